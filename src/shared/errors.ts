/**
 * One error type for all of AI-LINK. Every failure carries a registered `code`; tests assert on the code,
 * HTTP maps it to a status once (`httpStatusOf`), and messages say what was expected, what came and what to do.
 * The registry is closed: nothing in src throws a bare Error or names an unregistered code, and docs/errors.md is
 * generated from it (`npm run docs:errors`); test/shared/error-registry.test.ts checks all three.
 */

/** Every code, with the HTTP status it maps to, what it means and what to do about it (docs/errors.md). */
export const ERROR_CODES = {
  // input at an edge (CLI, config, HTTP, p2p message)
  INVALID_INPUT: {
    status: 400,
    about: 'input failed validation at an edge',
    action: 'fix the field the message names and send it again',
  },
  TIMEOUT: {
    status: 504,
    about: 'a remote step passed its deadline',
    action: 'retry; if it keeps happening, check that the peer is up or raise the deadline',
  },
  ABORTED: {
    status: 499,
    about: 'the caller cancelled the operation',
    action: 'nothing to fix: run the operation again if it is still wanted',
  },
  NOT_FOUND: {
    status: 404,
    about: 'the named thing does not exist',
    action: 'check the name, id or route in the message',
  },
  INTERNAL: {
    status: 500,
    about: 'an internal invariant broke or something failed unexpectedly (a bug)',
    action: 'report it with the log lines around it; the message says which invariant broke',
  },
  UNSUPPORTED_PLATFORM: {
    status: 500,
    about:
      'this machine stores numbers big-endian: secure aggregation reads its masks and hashes its messages as native words, so its updates would not add up with anyone else’s',
    action: 'run AI-LINK on a little-endian machine (x86-64, arm64, ppc64le, riscv64)',
  },

  // the HTTP layer itself (coordinator API, gateways), before any route runs
  BODY_TOO_LARGE: {
    status: 413,
    about: "a request body exceeds the API's size limit",
    action: 'send a smaller body (a task spec is a few KiB)',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    about: 'a request body has a content type the route does not accept',
    action: 'send JSON with `content-type: application/json`',
  },
  REQUEST_REFUSED: {
    status: 400,
    about:
      "the HTTP server refused the request before any route ran (the answer keeps the server's own 4xx status)",
    action: 'fix the request as the message says (e.g. a malformed URL or body)',
  },
  HOST_NOT_ALLOWED: {
    status: 421,
    about:
      'the Host header names no name this coordinator (or `ailink audit serve`) answers to (a DNS-rebinding page or a misdirected request)',
    action:
      'use a host name the message lists; start the coordinator with `--announce` naming the host you use, or `audit serve` with `--listen` on that host',
  },
  RATE_LIMITED: {
    status: 429,
    about: 'this client sent more requests a minute than the API allows',
    action: 'wait the seconds the Retry-After header gives, then retry more slowly',
  },
  PLACEMENT_SLOTS_TAKEN: {
    status: 429,
    about:
      "every placement slot of the current epoch is taken by this account's uploads: the chain draws each upload's miners with a slot, and an account has a fixed number per epoch",
    action:
      'wait for the next placement epoch (the message names its first block), or upload through fewer clients of the account at once',
  },
  AUDIT_UNAVAILABLE: {
    status: 503,
    about: 'the coordinator was started without an auditor, so it cannot verify lineages',
    action: 'verify with `ailink audit verify --task ID` against a chain node',
  },

  // authorisation of signed requests
  AUTH_MISSING: {
    status: 401,
    about: 'a request carried no signature',
    action: 'sign the request with your account key',
  },
  AUTH_BAD_SIGNATURE: {
    status: 401,
    about: 'the signature does not verify for the claimed account',
    action: 'sign with the key of the account you claim, over exactly the fields sent',
  },
  AUTH_EXPIRED: {
    status: 401,
    about: 'the signed request has expired',
    action: 'sign a fresh request (and check that your clock is right)',
  },
  AUTH_EXPIRY_TOO_FAR: {
    status: 401,
    about: 'the signed request expires further ahead than allowed',
    action: 'sign with a shorter expiry (and check that your clock is right)',
  },
  AUTH_REPLAYED: {
    status: 409,
    about: 'the signed request was already used',
    action: 'sign a new request for each call',
  },
  AUTH_WRONG_AUDIENCE: {
    status: 401,
    about: 'the request was signed for another node',
    action: 'sign the request for the peer id of the node you send it to',
  },
  AUTH_NOT_AUTHORISED: {
    status: 403,
    about: 'the signer is not authorised here',
    action: 'use an account that is allowed, or ask the owner to grant yours',
  },

  // keys
  KEY_FILE_INVALID: {
    status: 400,
    about: 'a key file is missing or malformed',
    action: 'point to the right key file, or create one with `ailink keys new --out FILE`',
  },
  KEY_FILE_PERMISSIONS: {
    status: 400,
    about: 'a key file is readable by group or others',
    action: 'restrict it with `chmod 600 FILE` (as ssh demands)',
  },

  // p2p host and gossip
  PEER_UNREACHABLE: {
    status: 503,
    about: 'a peer could not be dialled: no address of it is known',
    action: "give the peer's multiaddrs (from network.json or its log), or check that it runs",
  },
  GOSSIP_TOO_LARGE: {
    status: 413,
    about: 'a gossip payload exceeds the host limit (gossip would silently drop it at 4 MiB)',
    action: 'send less in one gossip message: store the bulk and gossip its id',
  },
  GOSSIP_ALREADY_SUBSCRIBED: {
    status: 409,
    about: 'the host already has a handler for that gossip topic',
    action: 'unsubscribe the first handler before subscribing another (a bug in the caller)',
  },

  // object codec
  CODEC_PROFILE_INVALID: {
    status: 400,
    about: 'segment/fragment sizes do not fit together',
    action: 'use a profile whose segment size is the data-fragment count times the fragment size',
  },
  CODEC_TOO_FEW_FRAGMENTS: {
    status: 422,
    about: 'fewer than the data-fragment count survived',
    action: 'fetch the missing fragments from other miners; with too few anywhere the segment is lost',
  },
  CODEC_HASH_MISMATCH: {
    status: 422,
    about: 'bytes do not hash to the recorded id',
    action: 'fetch the object again from other miners: these bytes were altered',
  },
  CODEC_RS_FAILED: {
    status: 500,
    about: 'the Reed-Solomon library reported an error',
    action: 'report it with the message (a bug or a corrupt RS kernel)',
  },
  CODEC_WORKER_FAILED: {
    status: 500,
    about: 'a codec worker thread exited or failed without an AI-LINK error',
    action: 'retry; if it repeats, check the memory available to the process and report the log',
  },
  CRYPTO_DECRYPT_FAILED: {
    status: 422,
    about: 'authenticated decryption failed: data or key was altered',
    action: 'fetch the object again; if it still fails, the stored copy or its key wrap was tampered with',
  },
  CRYPTO_NOT_A_READER: {
    status: 403,
    about: 'the data key is not wrapped for this reader',
    action: "ask the object's owner to add you as a reader",
  },

  // fragment store and miner protocol
  FRAGMENT_NOT_FOUND: {
    status: 404,
    about: 'the miner does not hold that fragment',
    action: 'fetch it from another miner of the object',
  },
  FRAGMENT_HASH_MISMATCH: {
    status: 422,
    about: 'fragment bytes do not hash to the claimed hash',
    action: 'send the fragment again, exactly as encoded',
  },
  FRAGMENT_SIZE_MISMATCH: {
    status: 422,
    about: 'fragment length differs from the declared size',
    action: 'send the whole fragment, exactly the declared size',
  },
  FRAGMENT_TOO_LARGE: {
    status: 413,
    about: 'fragment exceeds the miner limit',
    action: 'use a profile with smaller fragments, or a miner with a higher limit',
  },
  FRAGMENT_CORRUPT: {
    status: 500,
    about: 'a stored fragment no longer matches its hash',
    action: "the miner's disk lost it: the network restores it from the other fragments; check the disk",
  },
  MINER_FULL: {
    status: 507,
    about: 'the miner has no capacity left',
    action: 'place the fragment on another miner, or give this one more space',
  },
  MINER_PROTOCOL: {
    status: 400,
    about: 'a peer broke the fragment protocol',
    action: 'upgrade the peer to the same AI-LINK version',
  },
  MINER_UNREACHABLE: {
    status: 503,
    about: 'a miner could not be dialled',
    action: 'retry later, or use another miner; check that it runs and its address is right',
  },

  // storage client and registry
  OBJECT_NOT_FOUND: {
    status: 404,
    about: 'no object with that fid is recorded',
    action: 'check the fid (or bucket and key); it may have been deleted',
  },
  RANGE_NOT_SATISFIABLE: {
    status: 416,
    about: 'the byte range asked for lies outside the object',
    action: 'ask for a range inside the object size the answer gives',
  },
  OBJECT_TAKEN: {
    status: 409,
    about:
      'another owner already stores an object with that fid (the same bytes), or the owner stores another object stored as the same bytes (plain bytes differing only by zeros at the end)',
    action: 'encrypt the object (its fid then differs), or ask the owner for access',
  },
  OBJECT_UNAVAILABLE: {
    status: 503,
    about: 'too few fragments of a segment can be fetched',
    action: 'retry later, when more of its miners are online',
  },
  NOT_ENOUGH_MINERS: {
    status: 503,
    about: 'fewer distinct healthy miners than columns',
    action: 'start more miners (or wait for them to be healthy) and retry',
  },
  PUT_FAILED: {
    status: 502,
    about: 'a column could not be placed on any miner',
    action: 'retry; the message names each miner that refused it and why',
  },
  NETWORK_FILE_INVALID: {
    status: 400,
    about: 'network.json is missing or malformed',
    action: 'point to the network.json the network wrote, or start one with `ailink dev`',
  },
  NODE_EXITED: {
    status: 503,
    about: 'a miner or verifier process of the network exited before it was ready',
    action: 'read its log (the message names it) and fix what it says',
  },
  UPLOAD_RANGE_MISMATCH: {
    status: 409,
    about:
      'a resumable upload chunk does not continue the bytes staged so far (an overlap, a gap or another total)',
    action: 'resend from the offset the answer names',
  },
  QUOTA_EXCEEDED: {
    status: 403,
    about:
      "a declaration would take more of its owner's storage space than is left; a multipart part would take the gateway's staging of open uploads past its limit; or a new multipart upload would pass the gateway's count of open ones",
    action:
      'buy more space (`ailink space buy`) or delete files; for staging, complete or abort open multipart uploads, or raise `ailink gateway --multipart-staging-max` (bytes) or `--multipart-uploads-max` (uploads)',
  },
  UPLOAD_TOO_LARGE: {
    status: 413,
    about: "an upload is larger than the gateway's configured maximum",
    action: 'upload in parts (multipart or resumable), or raise the gateway maximum',
  },
  UPLOAD_BUSY: {
    status: 409,
    about: 'another request is writing to the same resumable upload right now',
    action: 'wait for it to finish, then continue from the offset it reached',
  },
  ACCESS_DENIED: {
    status: 403,
    about: "the object's access terms refuse this reader, or its data key was not released to it",
    action: 'buy access (the message says the price) or ask the owner to share it',
  },

  // chain client and protocol modules
  CHAIN_UNREACHABLE: {
    status: 503,
    about: 'the chain endpoint could not be reached',
    action: 'check the endpoint, or start a node with `ailink chain` or `ailink dev`',
  },
  CHAIN_TX_REJECTED: {
    status: 502,
    about: 'the transaction pool refused a transaction (invalid, stale, dropped)',
    action: 'retry; if it repeats, check the account balance and nonce',
  },
  CHAIN_CALL_FAILED: {
    status: 422,
    about: 'a transaction was included but its call failed',
    action: 'read the module error in the message and fix the call',
  },
  CHAIN_TIMEOUT: {
    status: 504,
    about: 'a transaction was not included before its deadline (it may still land)',
    action: 'check the chain for it before sending it again',
  },
  CHAIN_CALL_REJECTED: {
    status: 422,
    about: 'a protocol call broke a rule and changed nothing',
    action: 'fix what the message says the rule expects, then call again',
  },

  // proofs (PoDR2 storage proofs, idle-space proofs) and the verifier
  PROOF_INVALID: {
    status: 422,
    about: 'a storage or idle-space proof did not verify',
    action: 'the miner does not hold what it claims: check its disk and fragment store',
  },
  PROOF_MALFORMED: {
    status: 400,
    about: 'proof or tag bytes have the wrong length or layout',
    action: 'upgrade the prover to the same AI-LINK version',
  },
  VERIFIER_UNAVAILABLE: {
    status: 503,
    about: 'no registered verifier could be reached',
    action: 'start a verifier (or wait for one) and retry',
  },

  // tasks and rounds (coordinator ↔ participant)
  COORDINATOR_UNREACHABLE: {
    status: 503,
    about: "the coordinator's HTTP API could not be reached",
    action: 'check the coordinator URL and that it runs',
  },
  TASK_NOT_FOUND: {
    status: 404,
    about: 'no task with that id',
    action: 'list the tasks (`ailink task list`) and use one of their ids',
  },
  JOIN_QUEUE_FULL: {
    status: 429,
    about:
      'the coordinator already has as many admissions waiting to be recorded on chain as it queues; this join was not queued',
    action:
      'join again after a few blocks (the participant does this by itself); nothing about the join is wrong',
  },
  TASK_STOPPED: {
    status: 409,
    about: 'the task has ended or its owner stopped it',
    action: 'nothing more to send to it; join another task',
  },
  TASK_SECAGG_FRAGILE: {
    status: 400,
    about: "the task's SecAgg neighbours and threshold cannot survive the dropouts its cohort.min plans for",
    action:
      'raise cohort.min, raise secagg.neighbours or lower secagg.threshold (the message names what works)',
  },
  TASK_UNVERIFIED: {
    status: 422,
    about: "a task's spec or coordinator does not match what its record on chain says",
    action: 'do not join it: the coordinator serves another task than the one recorded',
  },
  ROUND_MESSAGE_INVALID: {
    status: 400,
    about: 'a round message or stored update is malformed',
    action: 'upgrade the participant to the same AI-LINK version as the coordinator',
  },
  ROUND_SIGNATURE_INVALID: {
    status: 401,
    about: 'a round message is not signed by the key it claims',
    action: 'sign with the key of the account that joined the task',
  },
  ROUND_NOT_ADMITTED: {
    status: 403,
    about: 'the account is not admitted to the task',
    action: 'ask the task owner to admit your account (`ailink task admit ID ADDRESS`)',
  },
  ROUND_NOT_IN_COHORT: {
    status: 403,
    about: "the participant is not in this round's cohort",
    action: 'wait for a round that picks you',
  },
  ROUND_STALE: {
    status: 409,
    about: 'the message belongs to another round, attempt or stage (late or replayed)',
    action: 'nothing to fix: follow the current announcement',
  },
  ROUND_DUPLICATE: {
    status: 409,
    about: 'a different message for the same stage was already accepted',
    action: 'send one message per stage; the first one counts',
  },
  ROUND_ANNOUNCEMENT_REFUSED: {
    status: 422,
    about:
      "a round announcement contradicts the task's spec or the chain (SecAgg, k, t, cohort size or admissions): the participant sits the round out",
    action: 'nothing to fix on your side; report the coordinator if it repeats',
  },
  ROUND_UPDATE_REFUSED: {
    status: 422,
    about: 'an update has the wrong shape, non-finite values or fails its checks',
    action: 'check the local data and model against the task spec; the message says which check failed',
  },
  MODEL_UNVERIFIED: {
    status: 422,
    about: 'model bytes do not hash to what the task or chain recorded',
    action: 'fetch the model again from storage; do not use these bytes',
  },
  BUNDLE_MALFORMED: {
    status: 422,
    about: 'an audit bundle (or a block in it) is not in the format `ailink audit export` writes',
    action: 'export the bundle again with `ailink audit export`; do not trust this file',
  },
  BUNDLE_OBJECT_MISSING: {
    status: 422,
    about: 'an audit bundle lacks (or holds a corrupted copy of) a stored object the audit needs',
    action: 'export the bundle again from a network that still serves the object',
  },
  AUDIT_FAILED: {
    status: 422,
    about: "a task's lineage does not verify against the chain",
    action: 'read the findings of the report: each names the round and the check that failed',
  },
  INDEXER_STATE_MISMATCH: {
    status: 500,
    about: 'the indexer database belongs to another chain or is inconsistent',
    action: 'delete the indexer database and let it re-index',
  },

  // aggregation core (src/aggregation raises these as AggregationError; same codes and meaning)
  AGG_INVALID_INPUT: {
    status: 422,
    about: 'an update, weight or parameter is malformed (length, finiteness, range)',
    action: 'check the update or parameter the message names against the task spec',
  },
  AGG_EMPTY: {
    status: 422,
    about: 'there is nothing to aggregate',
    action: 'wait for updates before aggregating',
  },
  AGG_REFUSED_UNDER_SECAGG: {
    status: 400,
    about: 'a robust aggregator needs plaintext updates and cannot run under secure aggregation',
    action:
      'with SecAgg choose a sum-based strategy (fedavg, fedadam, …), or set secagg.enabled to false for a robust one',
  },
  AGG_TOO_FEW_UPDATES: {
    status: 422,
    about: 'a robust aggregator needs more updates than it tolerates byzantine ones',
    action: 'raise cohort.min or lower the tolerated byzantine count',
  },
  DP_INVALID_PARAMETERS: {
    status: 400,
    about: 'differential-privacy parameters are out of range',
    action: 'fix dp in the task spec (the message names the parameter and its range)',
  },
  DP_BUDGET_EXHAUSTED: {
    status: 409,
    about: 'the privacy budget of the task is spent',
    action: 'stop the task, or start a new one with its own budget',
  },
  QUANT_INVALID_PARAMETERS: {
    status: 400,
    about: 'quantization range or bits are out of range',
    action: 'fix secagg.range and secagg.bits in the task spec',
  },
  SECAGG_INVALID_PARAMETERS: {
    status: 400,
    about: 'SecAgg parameters (n, k, t) do not fit together',
    action: 'fix secagg in the task spec (the message says which bound broke)',
  },
  SECAGG_BAD_MESSAGE: {
    status: 400,
    about: 'a protocol message is malformed, misaddressed, replayed or wrongly signed',
    action: 'nothing to fix unless it repeats: then the peer it names runs another version or misbehaves',
  },
  SECAGG_SHARE_INVALID: {
    status: 422,
    about: 'a secret share failed its integrity check',
    action: 'the peer it names sent altered or too few shares; the round aborts or drops it',
  },
  SECAGG_ABORTED: {
    status: 422,
    about: 'the protocol ended without an aggregate (too few survivors or a lying server)',
    action: 'run the round again; if it repeats, raise cohort.min or check the reason the coordinator signed',
  },

  // models and training
  MODEL_UNKNOWN: {
    status: 400,
    about: 'no model of that name is defined (see models/)',
    action: 'use a model name from models/, or give a model.json',
  },
  MODEL_INVALID: {
    status: 422,
    about: 'a model.json or model package is malformed, or tfjs cannot build it',
    action: 'fix the file (one input, one 2-D output)',
  },
  MODEL_LAYER_UNSUPPORTED: {
    status: 422,
    about: 'the model uses a layer AI-LINK cannot train on its backends',
    action: 'replace that layer (see models/README.md)',
  },
  MODEL_SHAPE_MISMATCH: {
    status: 422,
    about: 'a weight vector has the wrong length for the model',
    action: 'use weights saved for this model (same layers and sizes)',
  },
  MODEL_WEIGHTS_INVALID: {
    status: 422,
    about: 'a weight vector holds NaN or infinite values',
    action: 'start from valid weights; lower the learning rate if training produced them',
  },
  TRAINING_DIVERGED: {
    status: 422,
    about: 'local training produced a non-finite loss',
    action: 'lower the learning rate, or check the data for extreme values',
  },
  TRAINING_WORKER_FAILED: {
    status: 500,
    about: 'a training worker crashed or failed unexpectedly',
    action: 'retry; if it repeats, check the memory available and report the log',
  },
  TRAINING_BACKEND_UNAVAILABLE: {
    status: 500,
    about: 'no TensorFlow.js backend could be loaded',
    action: 'reinstall the dependencies (`npm ci`) on a supported Node version',
  },

  // data files (CSV/TSV, image folders, IDX) against a task's data schema
  DATA_SCHEMA_MISMATCH: {
    status: 422,
    about: "a data file does not match the task's data schema",
    action: 'fix the named file, line and column, or remove what the schema does not declare',
  },
  DATA_DECODE_FAILED: {
    status: 422,
    about: 'a data file could not be decoded',
    action: 're-export the named file as PNG/JPEG, UTF-8 CSV/TSV or valid gzip',
  },
  OBJECT_TOO_LARGE: {
    status: 413,
    about: 'a stored object is larger than what its reader expects (e.g. a round update); it was not fetched',
    action: 'nothing to fix on the reader: whoever stored it sent more than the format allows',
  },
  DATA_TOO_LARGE: {
    status: 413,
    about: 'a data file or image exceeds its size bound (a guard against decompression bombs)',
    action: 'shrink or split it, or raise the bound',
  },
} as const satisfies Record<string, { status: number; about: string; action: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AilinkError extends Error {
  override readonly name = 'AilinkError';
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  /** A plain object for the wire (p2p answers, HTTP bodies, JSON CLI output). */
  toJSON(): { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

/** True when `err` is an AilinkError, optionally with the given code. */
export function hasCode(err: unknown, code?: ErrorCode): err is AilinkError {
  return err instanceof AilinkError && (code === undefined || err.code === code);
}

/** A short reason for reports and logs: the code and the first line of the message. */
export function describeError(err: unknown): string {
  const message = (err as Error)?.message?.split('\n')[0]?.slice(0, 120) ?? String(err);
  return hasCode(err) ? `${err.code} (${message})` : message;
}
