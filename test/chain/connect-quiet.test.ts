import { afterEach, expect, it, vi } from 'vitest';
import { connectChain } from '../../src/chain/client.ts';
import { useDevChain } from './fixture.ts';

// A connection says nothing on its own. @polkadot/api printed, through console.warn, for every connection to a
// runtime without Metadata API v2 (like the dev chain's) `API/INIT: MetadataApi not available, rpc::state::get_metadata
// will be used.`, and through console.error, when a client closed before the api's own runtime-version subscription
// was answered, `RPC-CORE: subscribeRuntimeVersion(): RuntimeVersion:: disconnected from ws://…: 1000:: Normal
// Closure` (twice): a dozen times over in `npm run demo`. The test closes right after connecting for that reason.

/** @polkadot's loggers (@polkadot/util `logger`) prefix each line with their origin: api/init, rpc-core, api-ws. */
const POLKADOT_NOISE = /MetadataApi|API\/INIT:|RPC-CORE:|API-WS:/;

const fx = useDevChain();

afterEach(() => {
  vi.restoreAllMocks();
});

/** Everything written to the console or to stdout/stderr while `run` runs. */
async function captured(run: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const record = (...args: unknown[]) => {
    lines.push(args.map(String).join(' '));
  };
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const)
    vi.spyOn(console, method).mockImplementation(record);
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      record(typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk));
      return true;
    });
  try {
    await run();
  } finally {
    vi.restoreAllMocks();
  }
  return lines;
}

it('connects to the dev chain and closes without @polkadot/api printing anything', async () => {
  const lines = await captured(async () => {
    const client = await connectChain(fx.endpoint());
    expect(client.runtime).toMatch(/\/\d+$/);
    await client.close();
    // The close message used to come from the socket's close event, after close() had returned: give it time.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });
  expect(lines.filter((l) => POLKADOT_NOISE.test(l))).toEqual([]);
});
