import { describe, expect, it } from 'vitest';
import { readLE32, requireLittleEndian, writeLE32 } from '../../src/shared/bytes.ts';
import { expectCode } from '../storage/helpers.ts';

describe('readLE32 / writeLE32: 32-bit little-endian values in bulk', () => {
  it('read what a DataView reads, at any offset, and write its inverse', () => {
    const bytes = new Uint8Array(4 * 5 + 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) & 0xff;
    const view = new DataView(bytes.buffer);
    const words = readLE32(Uint32Array, bytes, 3, 5);
    const floats = readLE32(Float32Array, bytes.subarray(1), 2, 5);
    for (let i = 0; i < 5; i++) {
      expect(words[i]).toBe(view.getUint32(3 + 4 * i, true));
      expect(Object.is(floats[i], view.getFloat32(3 + 4 * i, true))).toBe(true);
    }
    const out = new Uint8Array(bytes.length);
    out.set(bytes.subarray(0, 3));
    writeLE32(out, 3, words);
    expect(out).toEqual(bytes);
    const again = new Uint8Array(bytes.length);
    again.set(bytes.subarray(0, 3));
    writeLE32(again.subarray(1), 2, floats);
    expect(again).toEqual(bytes);
  });

  it('refuse a range outside the bytes', () => {
    expect(() => readLE32(Uint32Array, new Uint8Array(8), 5, 1)).toThrow(RangeError);
    expect(() => writeLE32(new Uint8Array(8), 6, new Uint32Array(1))).toThrow(RangeError);
  });
});

describe('requireLittleEndian: what every ailink command checks first', () => {
  it('refuses a big-endian machine with UNSUPPORTED_PLATFORM, and passes this one', () => {
    const err = expectCode(() => requireLittleEndian(false), 'UNSUPPORTED_PLATFORM');
    expect(err.message).toMatch(/expected a little-endian machine, this one is big-endian/);
    expect(() => requireLittleEndian(true)).not.toThrow();
    expect(() => requireLittleEndian()).not.toThrow();
  });
});
