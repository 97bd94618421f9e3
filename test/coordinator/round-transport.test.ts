import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveRoundProtocol } from '../../src/coordinator/transport.ts';
import { createHost, type Host } from '../../src/p2p/index.ts';
import { MAX_ROUND_MESSAGE, ROUND_PROTOCOL } from '../../src/task/index.ts';

// Found by the fuzzer (p2p:round, bench/fuzz/p2p.ts): a round-protocol frame cut short or announcing more than
// MAX_ROUND_MESSAGE was answered with a stream reset, no code. It is answered with ROUND_MESSAGE_INVALID, and the
// coordinator is never asked.
describe('the round protocol refuses frames it cannot read with a code', () => {
  let server: Host;
  let client: Host;
  const asked: unknown[] = [];

  beforeAll(async () => {
    server = await createHost();
    client = await createHost();
    await serveRoundProtocol(server, {
      handle: async (raw) => {
        asked.push(raw);
        return { ok: true };
      },
    });
  });
  afterAll(async () => {
    await client?.stop();
    await server?.stop();
  });

  async function replyTo(bytes: Uint8Array): Promise<unknown> {
    const signal = AbortSignal.timeout(5000);
    const channel = await client.open({ peerId: server.peerId, addrs: server.addrs() }, ROUND_PROTOCOL, {
      signal,
    });
    try {
      await channel.write(bytes, { signal });
      await channel.closeWrite({ signal });
      return JSON.parse(new TextDecoder().decode(await channel.readFrame(MAX_ROUND_MESSAGE, { signal })));
    } finally {
      channel.abort(new Error('done'));
    }
  }
  const header = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };

  it.each([
    ['an empty stream', new Uint8Array(0)],
    ['a header cut short', header(10).subarray(0, 2)],
    ['a frame cut short', new Uint8Array([...header(10), 1, 2, 3])],
    ['a frame announcing more than the limit', new Uint8Array([...header(MAX_ROUND_MESSAGE + 1), 0, 0])],
  ])('%s', async (_label, bytes) => {
    expect(await replyTo(bytes)).toMatchObject({ ok: false, error: { code: 'ROUND_MESSAGE_INVALID' } });
    expect(asked).toEqual([]);
  });

  it('still hands a whole frame to the coordinator', async () => {
    const body = new TextEncoder().encode('{"kind":"view"}');
    expect(await replyTo(new Uint8Array([...header(body.byteLength), ...body]))).toEqual({ ok: true });
    expect(asked).toEqual([{ kind: 'view' }]);
  });
});
