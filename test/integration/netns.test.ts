import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespaces, type Namespaces, netnsUnavailable } from '../../bench/netns.ts';

// The link faults of the chaos harness (bench/netns.ts): a cut link carries nothing until it is mended, and a slowed
// one has a bandwidth limit on both ends of its pair until it is restored. Real namespaces, a real TCP server.

const unavailable = netnsUnavailable();

/** A TCP connection from host `from` to the server on `to`: the server's greeting, or why none came within 3 s. */
function connect(h: Namespaces, from: string, to: string): string {
  const script = `const s = require('node:net').connect(7000, '${h.address(to)}');
s.setTimeout(3000, () => { console.log('timeout'); process.exit(0); });
s.on('data', (d) => { console.log(String(d)); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
  return execFileSync('ip', ['netns', 'exec', h.namespace(from), process.execPath, '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  }).trim();
}

const qdiscs = (ns: string, dev: string) =>
  spawnSync('tc', ['-n', ns, 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' }).stdout;

describe.skipIf(unavailable !== null)(
  `hosts whose links fail (bench/netns.ts)${unavailable ? ` — skipped: ${unavailable}` : ''}`,
  () => {
    let h: Namespaces;
    let server: ChildProcess;
    beforeAll(async () => {
      h = createNamespaces(`ailt${process.pid % 10_000}`, ['a', 'b']);
      server = spawn(
        'ip',
        [
          'netns',
          'exec',
          h.namespace('b'),
          process.execPath,
          '-e',
          `require('node:net').createServer((s) => s.end('hello')).listen(7000, '${h.address('b')}', () => console.log('up'))`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        server.stdout!.once('data', () => resolve());
        server.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
      });
    });
    afterAll(() => {
      server?.kill('SIGKILL');
      h?.remove();
    });

    it('a cut link carries nothing, and carries again once mended', () => {
      expect(connect(h, 'a', 'b')).toBe('hello');
      h.cut('b');
      expect(connect(h, 'a', 'b')).not.toBe('hello');
      h.mend('b');
      expect(connect(h, 'a', 'b')).toBe('hello');
    });

    it('a slowed link is limited on both ends of its pair, and is not once restored', () => {
      h.slow('b', 256);
      expect(qdiscs(h.namespace('b'), 'eth0')).toMatch(/tbf .*rate 256Kbit/);
      expect(qdiscs(`ailt${process.pid % 10_000}-sw`, 'p1')).toMatch(/tbf .*rate 256Kbit/);
      // Slow, not cut: a small greeting still arrives.
      expect(connect(h, 'a', 'b')).toBe('hello');
      h.unslow('b');
      expect(qdiscs(h.namespace('b'), 'eth0')).not.toMatch(/tbf/);
      expect(qdiscs(`ailt${process.pid % 10_000}-sw`, 'p1')).not.toMatch(/tbf/);
    });

    it('a host it does not have is refused by name', () => {
      expect(() => h.cut('c')).toThrow(/no host c among a, b/);
    });
  },
);
