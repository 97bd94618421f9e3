/**
 * One error type for all of AI-LINK. Every failure carries a registered `code`; tests assert on the code,
 * HTTP maps it to a status once (`httpStatusOf`), and messages say what was expected and what came.
 */

/** Every code, with the HTTP status it maps to and one line for the docs. Modules register theirs here. */
export const ERROR_CODES = {
  // input at an edge (CLI, config, HTTP, p2p message)
  INVALID_INPUT: { status: 400, about: 'input failed validation at an edge' },
  TIMEOUT: { status: 504, about: 'a remote step passed its deadline' },
  ABORTED: { status: 499, about: 'the caller cancelled the operation' },
  NOT_FOUND: { status: 404, about: 'the named thing does not exist' },

  // authorisation of signed requests
  AUTH_MISSING: { status: 401, about: 'a request carried no signature' },
  AUTH_BAD_SIGNATURE: { status: 401, about: 'the signature does not verify for the claimed account' },
  AUTH_EXPIRED: { status: 401, about: 'the signed request has expired' },
  AUTH_EXPIRY_TOO_FAR: { status: 401, about: 'the signed request expires further ahead than allowed' },
  AUTH_REPLAYED: { status: 409, about: 'the signed request was already used' },
  AUTH_WRONG_AUDIENCE: { status: 401, about: 'the request was signed for another node' },
  AUTH_NOT_AUTHORISED: { status: 403, about: 'the signer is not authorised here' },

  // keys
  KEY_FILE_INVALID: { status: 400, about: 'a key file is missing or malformed' },
  KEY_FILE_PERMISSIONS: {
    status: 400,
    about: 'a key file is readable by group or others: restrict it with `chmod 600 FILE` (as ssh demands)',
  },

  // p2p gossip
  GOSSIP_TOO_LARGE: {
    status: 413,
    about: 'a gossip payload exceeds the host limit (gossip would silently drop it at 4 MiB)',
  },
  GOSSIP_ALREADY_SUBSCRIBED: { status: 409, about: 'the host already has a handler for that gossip topic' },

  // object codec
  CODEC_PROFILE_INVALID: { status: 400, about: 'segment/fragment sizes do not fit together' },
  CODEC_TOO_FEW_FRAGMENTS: { status: 422, about: 'fewer than the data-fragment count survived' },
  CODEC_HASH_MISMATCH: { status: 422, about: 'bytes do not hash to the recorded id' },
  CODEC_RS_FAILED: { status: 500, about: 'the Reed-Solomon library reported an error' },
  CRYPTO_DECRYPT_FAILED: { status: 422, about: 'authenticated decryption failed: data or key was altered' },
  CRYPTO_NOT_A_READER: { status: 403, about: 'the data key is not wrapped for this reader' },

  // fragment store and miner protocol
  FRAGMENT_NOT_FOUND: { status: 404, about: 'the miner does not hold that fragment' },
  FRAGMENT_HASH_MISMATCH: { status: 422, about: 'fragment bytes do not hash to the claimed hash' },
  FRAGMENT_SIZE_MISMATCH: { status: 422, about: 'fragment length differs from the declared size' },
  FRAGMENT_TOO_LARGE: { status: 413, about: 'fragment exceeds the miner limit' },
  FRAGMENT_CORRUPT: { status: 500, about: 'a stored fragment no longer matches its hash' },
  MINER_FULL: { status: 507, about: 'the miner has no capacity left' },
  MINER_PROTOCOL: { status: 400, about: 'a peer broke the fragment protocol' },
  MINER_UNREACHABLE: { status: 503, about: 'a miner could not be dialled' },

  // storage client and registry
  OBJECT_NOT_FOUND: { status: 404, about: 'no object with that fid is recorded' },
  RANGE_NOT_SATISFIABLE: { status: 416, about: 'the byte range asked for lies outside the object' },
  OBJECT_TAKEN: {
    status: 409,
    about: 'another owner already stores an object with that fid (the same bytes)',
  },
  OBJECT_UNAVAILABLE: { status: 503, about: 'too few fragments of a segment can be fetched' },
  NOT_ENOUGH_MINERS: { status: 503, about: 'fewer distinct healthy miners than columns' },
  PUT_FAILED: { status: 502, about: 'a column could not be placed on any miner' },
  NETWORK_FILE_INVALID: { status: 400, about: 'network.json is missing or malformed' },
  NODE_EXITED: {
    status: 503,
    about: 'a miner or verifier process of the network exited before it was ready (its log says why)',
  },
  UPLOAD_RANGE_MISMATCH: {
    status: 409,
    about:
      'a resumable upload chunk does not continue the bytes staged so far (an overlap, a gap or another total): resend from the offset the answer names',
  },
  QUOTA_EXCEEDED: {
    status: 403,
    about:
      "a declaration would take more of its owner's storage space than is left: buy more (`ailink space buy`) or delete files",
  },
  UPLOAD_TOO_LARGE: { status: 413, about: "an upload is larger than the gateway's configured maximum" },
  UPLOAD_BUSY: { status: 409, about: 'another request is writing to the same resumable upload right now' },
  ACCESS_DENIED: {
    status: 403,
    about: "the object's access terms refuse this reader, or its data key was not released to it",
  },

  // chain client and protocol modules
  CHAIN_UNREACHABLE: { status: 503, about: 'the chain endpoint could not be reached' },
  CHAIN_TX_REJECTED: {
    status: 502,
    about: 'the transaction pool refused a transaction (invalid, stale, dropped)',
  },
  CHAIN_CALL_FAILED: { status: 422, about: 'a transaction was included but its call failed' },
  CHAIN_TIMEOUT: {
    status: 504,
    about: 'a transaction was not included before its deadline (it may still land)',
  },
  CHAIN_CALL_REJECTED: { status: 422, about: 'a protocol call broke a rule and changed nothing' },
  // proofs (PoDR2 storage proofs, idle-space proofs) and the verifier
  PROOF_INVALID: { status: 422, about: 'a storage or idle-space proof did not verify' },
  PROOF_MALFORMED: { status: 400, about: 'proof or tag bytes have the wrong length or layout' },
  VERIFIER_UNAVAILABLE: { status: 503, about: 'no registered verifier could be reached' },
  // tasks and rounds (coordinator ↔ participant)
  COORDINATOR_UNREACHABLE: { status: 503, about: "the coordinator's HTTP API could not be reached" },
  TASK_NOT_FOUND: { status: 404, about: 'no task with that id' },
  TASK_STOPPED: { status: 409, about: 'the task has ended or its owner stopped it' },
  TASK_SECAGG_FRAGILE: {
    status: 400,
    about:
      "the task's SecAgg neighbours and threshold cannot survive the dropouts its cohort.min plans for: raise cohort.min, raise secagg.neighbours or lower secagg.threshold",
  },
  TASK_UNVERIFIED: {
    status: 422,
    about: "a task's spec or coordinator does not match what its record on chain says",
  },
  ROUND_MESSAGE_INVALID: { status: 400, about: 'a round message or stored update is malformed' },
  ROUND_SIGNATURE_INVALID: { status: 401, about: 'a round message is not signed by the key it claims' },
  ROUND_NOT_ADMITTED: { status: 403, about: 'the account is not admitted to the task' },
  ROUND_NOT_IN_COHORT: { status: 403, about: "the participant is not in this round's cohort" },
  ROUND_STALE: {
    status: 409,
    about: 'the message belongs to another round, attempt or stage (late or replayed)',
  },
  ROUND_DUPLICATE: { status: 409, about: 'a different message for the same stage was already accepted' },
  ROUND_ANNOUNCEMENT_REFUSED: {
    status: 422,
    about:
      "a round announcement contradicts the task's spec or the chain (SecAgg, k, t, cohort size or admissions): the participant sits the round out",
  },
  ROUND_UPDATE_REFUSED: {
    status: 422,
    about: 'an update has the wrong shape, non-finite values or fails its checks',
  },
  MODEL_UNVERIFIED: { status: 422, about: 'model bytes do not hash to what the task or chain recorded' },
  AUDIT_FAILED: { status: 422, about: "a task's lineage does not verify against the chain" },
  INDEXER_STATE_MISMATCH: {
    status: 500,
    about: 'the indexer database belongs to another chain or is inconsistent',
  },

  // models and training
  MODEL_UNKNOWN: { status: 400, about: 'no model of that name is defined (see models/)' },
  MODEL_INVALID: {
    status: 422,
    about:
      'a model.json or model package is malformed, or tfjs cannot build it: fix the file (one input, one 2-D output)',
  },
  MODEL_LAYER_UNSUPPORTED: {
    status: 422,
    about:
      'the model uses a layer AI-LINK cannot train on its backends: replace that layer (see models/README.md)',
  },
  MODEL_SHAPE_MISMATCH: { status: 422, about: 'a weight vector has the wrong length for the model' },
  MODEL_WEIGHTS_INVALID: { status: 422, about: 'a weight vector holds NaN or infinite values' },
  TRAINING_DIVERGED: { status: 422, about: 'local training produced a non-finite loss' },
  TRAINING_WORKER_FAILED: { status: 500, about: 'a training worker crashed or failed unexpectedly' },
  TRAINING_BACKEND_UNAVAILABLE: { status: 500, about: 'no TensorFlow.js backend could be loaded' },

  // data files (CSV/TSV, image folders, IDX) against a task's data schema
  DATA_SCHEMA_MISMATCH: {
    status: 422,
    about:
      "a data file does not match the task's data schema: fix the named file, line and column, or remove what the schema does not declare",
  },
  DATA_DECODE_FAILED: {
    status: 422,
    about:
      'a data file could not be decoded: re-export the named file as PNG/JPEG, UTF-8 CSV/TSV or valid gzip',
  },
  OBJECT_TOO_LARGE: {
    status: 413,
    about: 'a stored object is larger than what its reader expects (e.g. a round update); it was not fetched',
  },
  DATA_TOO_LARGE: {
    status: 413,
    about:
      'a data file or image exceeds its size bound (a guard against decompression bombs): shrink or split it, or raise the bound',
  },
} as const satisfies Record<string, { status: number; about: string }>;

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
