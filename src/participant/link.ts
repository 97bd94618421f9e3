import type { Host, PeerRef } from '../p2p/index.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { type AdmissionLoad, MAX_ROUND_MESSAGE, ROUND_PROTOCOL, type TaskSpec } from '../task/index.ts';
import type { CoordinatorLink } from './runtime.ts';

/**
 * An HTTP request to the coordinator's API. A join waits longer: for its admission to be recorded on chain, behind
 * the others queued (the runtime sizes that deadline by the chain's block time, `joinDeadlineMs`).
 */
const REQUEST_DEADLINE_MS = 10_000;

/**
 * How long a read of the coordinator's API (its info, the task) is tried again while the coordinator does not answer:
 * one being restarted after a crash comes back within seconds to minutes, and an organisation started before its
 * coordinator should wait for it rather than exit. Then the error stands.
 */
export const COORDINATOR_WAIT_MS = 10 * 60_000;

/**
 * `read()` again, after 1, 2, 4 … up to 15 s, while it fails because the coordinator cannot be reached or does not
 * answer in time, until `waitMs` has passed. Only for requests that can be sent twice (GETs; a join is signed anew by
 * the runtime for each try).
 */
export async function untilReachable<T>(
  read: () => Promise<T>,
  options: { waitMs?: number; log?: (line: string) => void; now?: () => number } = {},
): Promise<T> {
  const now = options.now ?? Date.now;
  const giveUpAt = now() + (options.waitMs ?? COORDINATOR_WAIT_MS);
  for (let pause = 1000; ; pause = Math.min(15_000, 2 * pause)) {
    try {
      return await read();
    } catch (err) {
      const unreachable = hasCode(err, 'COORDINATOR_UNREACHABLE') || hasCode(err, 'TIMEOUT');
      if (!unreachable || now() + pause > giveUpAt) throw err;
      options.log?.(`${(err as Error).message}; trying again in ${pause / 1000} s`);
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

/**
 * A participant's link to its coordinator: the task and joining over the coordinator's HTTP API, round requests on
 * direct libp2p streams, announcements on gossip (accepted only when signed by the coordinator's peer id). The
 * coordinator's peer id and addresses come from its `/v1/info`, and are looked up again when a dial fails: a restarted
 * coordinator keeps its peer id but may listen on new ports. A coordinator that does not answer (being restarted, or
 * not started yet) is waited for, up to COORDINATOR_WAIT_MS, on the first contact and for the task.
 * @throws COORDINATOR_UNREACHABLE or TIMEOUT naming the URL when the coordinator still does not answer
 */
export async function connectCoordinator(
  host: Host,
  coordinatorUrl: string,
  /** The coordinator's peer id as the chain records it: a server at the URL that is another peer is refused. */
  expectedPeerId?: string,
  options: { waitMs?: number; log?: (line: string) => void } = {},
): Promise<CoordinatorLink> {
  const base = coordinatorUrl.replace(/\/+$/, '');
  const info = await untilReachable(
    () => http<{ peerId: string; addrs: string[] }>(`${base}/v1/info`),
    options,
  );
  if (expectedPeerId !== undefined && info.peerId !== expectedPeerId)
    throw new AilinkError(
      'TASK_UNVERIFIED',
      `the coordinator at ${base} is peer ${info.peerId}, but the chain records ${expectedPeerId} for this task`,
    );
  let coordinator: PeerRef = { peerId: info.peerId, addrs: info.addrs };
  await host.connect(coordinator).catch(() => {});
  const rediscover = async () => {
    const fresh = await http<{ peerId: string; addrs: string[] }>(`${base}/v1/info`).catch(() => undefined);
    if (fresh === undefined || (expectedPeerId !== undefined && fresh.peerId !== expectedPeerId)) return;
    coordinator = { peerId: fresh.peerId, addrs: fresh.addrs };
    await host.connect(coordinator).catch(() => {}); // rejoins the gossip mesh too
  };
  return {
    peerId: host.peerId,
    task: (id) =>
      untilReachable(
        () => http<{ spec: TaskSpec; digest: string }>(`${base}/v1/tasks/${encodeURIComponent(id)}`),
        options,
      ),
    async admissionLoad() {
      const info = await http<{ admissions?: AdmissionLoad }>(`${base}/v1/info`);
      return info.admissions;
    },
    async join(task, request, { deadlineMs }) {
      await http(
        `${base}/v1/tasks/${encodeURIComponent(task)}/join`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...request, peer: { peerId: host.peerId, addrs: host.addrs() } }),
        },
        deadlineMs,
      );
    },
    async request(body, { signal }) {
      let channel: Awaited<ReturnType<Host['open']>>;
      try {
        channel = await host.open(coordinator, ROUND_PROTOCOL, { signal });
      } catch (err) {
        await rediscover();
        throw err;
      }
      try {
        await channel.writeFrame(new TextEncoder().encode(JSON.stringify(body)), { signal });
        const frame = await channel.readFrame(MAX_ROUND_MESSAGE, { signal });
        return JSON.parse(new TextDecoder().decode(frame));
      } finally {
        channel.abort(
          new AilinkError('ABORTED', 'the round request is answered (or failed): closing its stream'),
        );
      }
    },
    subscribe(topic, handler) {
      const log = options.log ?? (() => {});
      return host.subscribe(
        topic,
        (m) => {
          let data: unknown;
          try {
            data = JSON.parse(new TextDecoder().decode(m.data));
          } catch {
            log(
              `ignoring gossip on ${topic} (ROUND_MESSAGE_INVALID): ${m.data.byteLength} bytes that are not JSON`,
            );
            return;
          }
          handler(data);
        },
        {
          // Only the coordinator's peer announces; the host verified the origin's signature.
          validate: (_data, from) => {
            if (from !== coordinator.peerId)
              throw new AilinkError(
                'AUTH_NOT_AUTHORISED',
                `gossip from ${from}; only the coordinator's peer ${coordinator.peerId} announces`,
              );
            return true;
          },
          onReject: (err, from) =>
            log(`refusing gossip on ${topic} from ${from} (${err.code}): ${err.message}`),
        },
      );
    },
  };
}

/**
 * A JSON request with a deadline. The coordinator's error codes that a participant acts on are kept; any other
 * refusal is INVALID_INPUT with the coordinator's message.
 * @throws TIMEOUT when there is no answer within the deadline, naming the URL that was tried
 */
async function http<T>(url: string, init?: RequestInit, deadlineMs = REQUEST_DEADLINE_MS): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(deadlineMs) });
  } catch (cause) {
    // A refused or reset connection fails at once: saying "within N ms" of it would send the reader the wrong way.
    if ((cause as Error).name === 'TimeoutError')
      throw new AilinkError('TIMEOUT', `no answer from the coordinator at ${url} within ${deadlineMs} ms`, {
        cause,
      });
    const reason = (cause as { cause?: { code?: string } }).cause?.code ?? (cause as Error).message;
    throw new AilinkError(
      'COORDINATOR_UNREACHABLE',
      `could not reach the coordinator at ${url} (${reason}): is it running, and is the URL right?`,
      { cause },
    );
  }
  const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } } & T;
  if (!res.ok) {
    const code = body.error?.code;
    throw new AilinkError(
      code === 'TASK_NOT_FOUND' ||
        code === 'ROUND_NOT_ADMITTED' ||
        code === 'AUTH_BAD_SIGNATURE' ||
        code === 'JOIN_QUEUE_FULL'
        ? code
        : 'INVALID_INPUT',
      `${init?.method ?? 'GET'} ${url}: ${res.status} ${body.error?.message ?? ''}`,
    );
  }
  return body;
}
