/** Small byte helpers shared by every module. */

const HEX_RE = /^[0-9a-f]*$/;

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Parses lowercase hex; `what` names the value in the error. */
export function fromHex(hex: string, what = 'value'): Uint8Array {
  if (hex.length % 2 !== 0 || !HEX_RE.test(hex)) {
    throw new TypeError(
      `${what}: expected lowercase hex of even length, got ${JSON.stringify(hex.slice(0, 80))}`,
    );
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

export const MiB = 1024 * 1024;
export const KiB = 1024;
