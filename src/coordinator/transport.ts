import type { ByteChannel, Host } from '../p2p/index.ts';
import { AilinkError } from '../shared/errors.ts';
import { MAX_ROUND_MESSAGE, ROUND_PROTOCOL } from '../task/index.ts';
import type { Coordinator } from './coordinator.ts';

/** How long a participant has to send its request once it opened a round-protocol stream. */
const REQUEST_DEADLINE_MS = 10_000;

/**
 * Serves the round protocol on `host`: each stream carries one JSON request (at most MAX_ROUND_MESSAGE bytes, within
 * 10 s) and gets the coordinator's reply. A frame that is not JSON is handed on as `undefined`, which the coordinator
 * answers with ROUND_MESSAGE_INVALID like any other malformed request; so is a frame cut short, too large or late.
 */
export async function serveRoundProtocol(
  host: Host,
  coordinator: Pick<Coordinator, 'handle'>,
): Promise<void> {
  await host.handle(
    ROUND_PROTOCOL,
    async (channel) => {
      try {
        let frame: Uint8Array;
        try {
          frame = await channel.readFrame(MAX_ROUND_MESSAGE, {
            signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
          });
        } catch (err) {
          // A frame cut short, announcing more than MAX_ROUND_MESSAGE, or late: answered with a code, not a reset.
          await refuse(
            channel,
            new AilinkError(
              'ROUND_MESSAGE_INVALID',
              `expected one request frame of at most ${MAX_ROUND_MESSAGE} bytes within ${REQUEST_DEADLINE_MS} ms: ${(err as Error).message}`,
            ),
          );
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(new TextDecoder().decode(frame));
        } catch {
          body = undefined;
        }
        // The remote peer id is authenticated by the connection's Noise handshake.
        const reply = await coordinator.handle(body, channel.remotePeer);
        await channel.writeFrame(new TextEncoder().encode(JSON.stringify(reply)));
        await channel.closeWrite();
      } catch (err) {
        channel.abort(err as Error);
      }
    },
    { maxInboundStreams: 256 },
  );
}

/** Answers a request that could not be read with its error, as the coordinator answers a refused one. */
async function refuse(channel: ByteChannel, error: AilinkError): Promise<void> {
  try {
    const reply = { ok: false, error: error.toJSON() };
    await channel.writeFrame(new TextEncoder().encode(JSON.stringify(reply)), {
      signal: AbortSignal.timeout(2000),
    });
    await channel.closeWrite({ signal: AbortSignal.timeout(2000) });
  } catch {
    channel.abort(error);
  }
}
