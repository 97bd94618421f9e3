import type { Host } from '../p2p/index.ts';
import { MAX_ROUND_MESSAGE, ROUND_PROTOCOL } from '../task/index.ts';
import type { Coordinator } from './coordinator.ts';

/** How long a participant has to send its request once it opened a round-protocol stream. */
const REQUEST_DEADLINE_MS = 10_000;

/**
 * Serves the round protocol on `host`: each stream carries one JSON request (at most MAX_ROUND_MESSAGE bytes, within
 * 10 s) and gets the coordinator's reply. A frame that is not JSON is handed on as `undefined`, which the coordinator
 * answers with ROUND_MESSAGE_INVALID like any other malformed request.
 */
export async function serveRoundProtocol(
  host: Host,
  coordinator: Pick<Coordinator, 'handle'>,
): Promise<void> {
  await host.handle(
    ROUND_PROTOCOL,
    async (channel) => {
      try {
        const frame = await channel.readFrame(MAX_ROUND_MESSAGE, {
          signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
        });
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
