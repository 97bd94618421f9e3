import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { admissionMessage } from '../../src/chain/pallets/provenance.ts';
import { CREATE_TASK_OP, signCoordinatorRequest } from '../../src/coordinator/signed-requests.ts';
import { deossMessage } from '../../src/gateway/deoss-protocol.ts';
import { accountFromSeeds, accountsReady } from '../../src/shared/account.ts';
import { fromHex, toHex } from '../../src/shared/bytes.ts';
import { systemClock, systemRandom } from '../../src/shared/clock.ts';
import { joinMessage } from '../../src/task/messages.ts';

/**
 * A client of another host, for test/integration/clock-skew.test.ts: run under faketime, it signs with its own (skewed)
 * clock exactly as a user's tool does, sends one request, and prints the answer as one JSON line
 * `{ status, code }`. Never waits past its own deadline.
 *
 *   deoss URL SR_SEED_HEX X_SEED_HEX TTL_MS                 GET URL/deoss/file/list, signed as a DeOSS client
 *   coordinator URL SR_SEED_HEX X_SEED_HEX AUDIENCE BODY    POST URL/v1/tasks with BODY (a file), signed as `task create`
 *   join URL SR_SEED_HEX X_SEED_HEX TASK GENESIS              POST URL/v1/tasks/TASK/join, signed as a participant joins
 */
const [mode, url, sr, x, arg, bodyFile] = process.argv.slice(2) as string[];
await accountsReady();
const account = accountFromSeeds(fromHex(sr!), fromHex(x!));
const signal = AbortSignal.timeout(10_000);

let res: Response;
if (mode === 'deoss') {
  const message = deossMessage(Date.now() + Number(arg), randomBytes(12).toString('base64url'));
  res = await fetch(`${url}/deoss/file/list`, {
    headers: {
      Account: account.address,
      Message: message,
      Signature: `0x${toHex(account.sign(new TextEncoder().encode(message)))}`,
    },
    signal,
  });
} else if (mode === 'join') {
  // As src/participant/runtime.ts joins: the admission (for the chain) and the join signed at this host's time.
  const [task, genesis] = [arg!, bodyFile!];
  const identityKey = createHash('sha256').update(`identity/${account.address}`).digest('hex');
  const peer = { peerId: '12D3KooWSkewedPeer', addrs: ['/ip4/127.0.0.1/tcp/1'] };
  const claim = {
    task,
    account: account.address,
    identityKey,
    readerKey: account.readerKey,
    signedAt: Date.now(),
    peerId: peer.peerId,
  };
  res = await fetch(`${url}/v1/tasks/${task}/join`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      account: account.address,
      identityKey,
      signature: toHex(account.sign(admissionMessage(genesis, task, identityKey))),
      readerKey: account.readerKey,
      signedAt: claim.signedAt,
      joinSignature: toHex(account.sign(joinMessage(claim))),
      peer,
    }),
    signal,
  });
} else {
  const body = new Uint8Array(readFileSync(bodyFile!));
  const headers = signCoordinatorRequest(
    account,
    { op: CREATE_TASK_OP, body, audience: arg! },
    { clock: systemClock, random: systemRandom },
  );
  res = await fetch(`${url}/v1/tasks`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body,
    signal,
  });
}
const text = await res.text();
let code: string | undefined;
try {
  // The coordinator answers { error: { code } }; DeOSS { code: <status>, msg, error: <code> }.
  const json = JSON.parse(text) as { error?: string | { code?: string } };
  code = typeof json.error === 'string' ? json.error : json.error?.code;
} catch {
  code = undefined;
}
console.log(JSON.stringify({ status: res.status, code, clock: new Date().toISOString() }));
