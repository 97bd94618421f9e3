import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Host } from '../../src/p2p/index.ts';
import { connectCoordinator, untilReachable } from '../../src/participant/link.ts';
import { AilinkError, hasCode } from '../../src/shared/errors.ts';

/** The libp2p side is not under test here: a host that dials nothing. */
const host = { peerId: 'self', connect: async () => {}, addrs: () => [] } as unknown as Host;

/** A port nothing listens on (bound, noted, closed). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe('the link waits for a coordinator that does not answer (issue 18: organisations quit during its restart)', () => {
  it('a refused connection is COORDINATOR_UNREACHABLE naming the cause, not a timeout "within N ms"', async () => {
    const port = await freePort();
    const err = await connectCoordinator(host, `http://127.0.0.1:${port}`, undefined, { waitMs: 0 }).catch(
      (e) => e,
    );
    expect(hasCode(err, 'COORDINATOR_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
    expect((err as Error).message).not.toMatch(/within/);
  });

  it('an organisation started while its coordinator is down connects once it comes up', async () => {
    const port = await freePort();
    const server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ peerId: 'coordinator', addrs: [] }));
    });
    const lines: string[] = [];
    setTimeout(() => server.listen(port, '127.0.0.1'), 1500);
    try {
      const link = await connectCoordinator(host, `http://127.0.0.1:${port}`, 'coordinator', {
        waitMs: 30_000,
        log: (l) => lines.push(l),
      });
      expect(link.peerId).toBe('self');
      expect(lines.length).toBeGreaterThan(0);
      expect(lines[0]).toMatch(/could not reach the coordinator .*trying again in 1 s/);
    } finally {
      server.close();
    }
  }, 20_000);

  it('untilReachable tries again only while the coordinator is unreachable, and gives up after its wait', async () => {
    let calls = 0;
    const flaky = async () => {
      calls++;
      if (calls < 3) throw new AilinkError('COORDINATOR_UNREACHABLE', 'down');
      return 'up';
    };
    expect(await untilReachable(flaky, { waitMs: 10_000 })).toBe('up');
    expect(calls).toBe(3);

    let refused = 0;
    const notFound = async () => {
      refused++;
      throw new AilinkError('TASK_NOT_FOUND', 'no such task');
    };
    await expect(untilReachable(notFound, { waitMs: 10_000 })).rejects.toMatchObject({
      code: 'TASK_NOT_FOUND',
    });
    expect(refused).toBe(1);

    let t = 0;
    let tries = 0;
    const down = async () => {
      tries++;
      t += 500;
      throw new AilinkError('TIMEOUT', 'no answer');
    };
    await expect(untilReachable(down, { waitMs: 1200, now: () => t })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    expect(tries).toBe(1);
  }, 20_000);
});
