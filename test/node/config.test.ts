import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withConfigFile } from '../../src/node/config.ts';
import { servedHostNames } from '../../src/node/coordinator.ts';
import { hasCode } from '../../src/shared/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'ailink-config-'));
const file = (name: string, body: string) => {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
};
const refusal = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (err) {
    expect(hasCode(err, 'INVALID_INPUT')).toBe(true);
    return err as Error;
  }
  throw new Error('expected INVALID_INPUT');
};

describe('role config files (--config FILE)', () => {
  it('fills in the flags not given on the command line; a flag given overrides the file', () => {
    const path = file(
      'coordinator.json',
      JSON.stringify({ chain: 'ws://10.0.0.1:9944', listen: '10.0.0.2', 'http-port': 8800, key: 'k.json' }),
    );
    expect(withConfigFile('coordinator', path, { listen: '10.0.0.9', 'p2p-port': undefined })).toEqual({
      chain: 'ws://10.0.0.1:9944',
      listen: '10.0.0.9',
      'http-port': '8800',
      key: 'k.json',
    });
    const miner = file('miner.json', JSON.stringify({ listen: ['/ip4/10.0.0.3/tcp/4001'], capacity: 1024 }));
    expect(withConfigFile('miner', miner, {})).toEqual({
      listen: ['/ip4/10.0.0.3/tcp/4001'],
      capacity: '1024',
    });
    expect(withConfigFile('miner', undefined, { capacity: '5' })).toEqual({ capacity: '5' });
  });

  it('refuses a file that does not validate, naming the file and the field', () => {
    const unknown = file('unknown.json', JSON.stringify({ 'http-prot': 8700 }));
    expect(refusal(() => withConfigFile('coordinator', unknown, {})).message).toBe(
      `${unknown}: http-prot: not a flag of \`ailink coordinator\``,
    );
    const wrong = file('wrong.json', JSON.stringify({ 'http-port': '8700', chain: 'http://x' }));
    const message = refusal(() => withConfigFile('coordinator', wrong, {})).message;
    expect(message).toContain('http-port: ');
    expect(message).toContain('chain: expected a ws:// or wss:// endpoint');
    const broken = file('broken.json', '{"chain": ');
    expect(refusal(() => withConfigFile('participant', broken, {})).message).toContain(
      `cannot read ${broken} as JSON`,
    );
    expect(refusal(() => withConfigFile('verifier', join(dir, 'missing.json'), {})).message).toContain(
      'missing.json',
    );
  });
});

describe("the coordinator's Host allow-list (servedHostNames)", () => {
  it('the bound address, the announced host and, on loopback or every interface, the loopback names', () => {
    expect(servedHostNames('127.0.0.1', undefined).sort()).toEqual(['127.0.0.1', '::1', 'localhost']);
    expect(servedHostNames('10.77.0.2', undefined)).toEqual(['10.77.0.2']);
    expect(servedHostNames('10.77.0.2', 'https://Coord.Example:443').sort()).toEqual([
      '10.77.0.2',
      'coord.example',
    ]);
    expect(servedHostNames('0.0.0.0', 'http://[2001:db8::1]:8700').sort()).toEqual([
      '127.0.0.1',
      '2001:db8::1',
      '::1',
      'localhost',
    ]);
    // Every interface and nothing announced: its names are unknown, so none is refused.
    expect(servedHostNames('::', undefined)).toEqual([]);
  });
});
