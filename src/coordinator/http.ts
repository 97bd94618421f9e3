import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  ResponseSerializationError,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AuditQuerySchema, AuditReportSchema } from '../audit/schema.ts';
import type { AuditReport } from '../audit/types.ts';
import { isAddress } from '../shared/account.ts';
import { type Clock, systemClock } from '../shared/clock.ts';
import { AilinkError, type ErrorCode, hasCode, httpStatusOf } from '../shared/errors.ts';
import type { NonceLedger } from '../storage/protocol/index.ts';
import { TaskSpecSchema } from '../task/index.ts';
import type { Coordinator } from './coordinator.ts';
import { registerExplorer } from './explorer.ts';
import {
  CREATE_TASK_OP,
  createOwnerGuard,
  MAX_SIGNATURE_TTL_MS,
  SIGNATURE_HEADERS,
} from './signed-requests.ts';

/**
 * The coordinator's HTTP API: what owners, participants and dashboards read and the two writes (create a task — the
 * coordinator's own account only, signed: src/coordinator/signed-requests.ts — and join one, signed by the joining
 * account). Every route declares its params, body and responses with zod; the same schemas validate requests, encode
 * replies and generate the OpenAPI document at `GET /openapi.json`, so the docs cannot drift from the behaviour.
 * Rounds themselves run over the p2p round protocol, not here.
 */

/** Request bodies above this are refused with 413 before they are parsed (a task spec is a few KiB). */
export const BODY_LIMIT = 256 * 1024;

/** The version of this HTTP API (OpenAPI `info.version`), not of the software (`GET /v1/info` has that). */
export const API_VERSION = '1.0.0';

/**
 * The codes the API answers with: all registered in ERROR_CODES, including those of failures in the HTTP layer itself
 * (INTERNAL, BODY_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, REQUEST_REFUSED, HOST_NOT_ALLOWED, RATE_LIMITED,
 * AUDIT_UNAVAILABLE), so docs/errors.md lists every one with what to do.
 */
export type HttpErrorCode = ErrorCode;

export interface HttpDeps {
  readonly coordinator: Coordinator;
  /** Read per request: the p2p host's addresses are only known once it listens. */
  info(): { peerId: string; addrs: string[]; account: string; version: string };
  /** Where unexpected (500) failures are reported; their details are not sent to the client. */
  readonly log?: (line: string) => void;
  /**
   * Verifies a task's lineage (rounds 0..round, default all) against the chain and storage, for
   * `GET /v1/tasks/:id/audit` and the explorer's badges; without it that route answers 503 AUDIT_UNAVAILABLE.
   */
  readonly audit?: (task: string, round?: number) => Promise<AuditReport>;
  /**
   * Nonces of signed task creations, remembered until they expire (the store's `requestNonces`: persisted, so a
   * restart does not accept a captured request again).
   */
  readonly nonces: NonceLedger;
  /** Judges the expiry of signed requests and the rate limits; the system clock by default. */
  readonly clock?: Clock;
  /** Defences of an API reached across networks (HTTP_LIMITS by default). */
  readonly limits?: Partial<HttpLimits>;
}

export interface HttpLimits {
  /**
   * Host names (no port) requests may carry in their Host header; empty for any. A browser page on another site
   * that rebinds its own name to this address sends its own name, and is refused.
   */
  readonly hosts: readonly string[];
  /** Requests one client address may make per minute (a token bucket refilled continuously). */
  readonly perMinute: number;
  /** How long a request may take to arrive whole, and a connection may stay idle (slow clients hold sockets). */
  readonly requestTimeoutMs: number;
  readonly connectionTimeoutMs: number;
}

export const HTTP_LIMITS: HttpLimits = Object.freeze({
  hosts: [],
  perMinute: 600,
  requestTimeoutMs: 30_000,
  connectionTimeoutMs: 60_000,
});

/** At most this many clients are remembered by the rate limiter; the longest idle are forgotten first. */
const MAX_TRACKED_CLIENTS = 10_000;

// Schemas given an `id` with `.meta()` become named components of the OpenAPI document, and `$ref`s where routes use
// them. They live in zod's global registry: the provider reads `.meta()` descriptions from the registry it is given,
// so a private registry would silently drop every field description.

const hex = (bytes: number) =>
  z
    .string()
    .regex(
      new RegExp(`^[0-9a-f]{${2 * bytes}}$`),
      `expected ${2 * bytes} lowercase hex characters (${bytes} bytes)`,
    );
const AddressSchema = z
  .string()
  .refine(isAddress, 'expected an SS58 address')
  .meta({ description: 'SS58 chain account' });

export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: z.string().meta({
        description:
          'a registered AI-LINK error code (ERROR_CODES; docs/errors.md says what each means and what to do)',
      }),
      message: z.string().meta({ description: 'what was expected and what came; names the field for 400s' }),
    }),
  })
  .meta({ id: 'Error', description: 'every refusal and failure has this shape' });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

// A copy of the task module's schema with an id: the original stays as it is (`.meta()` returns a new schema).
const SpecSchema = TaskSpecSchema.meta({ id: 'TaskSpec', description: 'a task as committed to on chain' });

// Documentation only: POST /v1/tasks validates loosely and lets the coordinator check the spec (one rule set).
// Registering it with an id puts it among the document's components, where the body's description points.
TaskSpecSchema.omit({ version: true, coordinator: true, model: true })
  .extend({
    model: z.object({
      fid: TaskSpecSchema.shape.model.shape.fid,
      name: TaskSpecSchema.shape.model.shape.name.optional(),
      initialSeed: TaskSpecSchema.shape.model.shape.initialSeed,
    }),
  })
  .meta({
    id: 'TaskInput',
    description:
      'what POST /v1/tasks takes: a TaskSpec without version and coordinator, and of the model only the fid of the stored model package (the coordinator reads the rest from it)',
  });

// What POST /v1/tasks must carry; checked before the schemas run (a refusal is an AUTH_* code, not INVALID_INPUT),
// declared here so the OpenAPI document lists them.
const SignatureHeadersSchema = z.looseObject({
  [SIGNATURE_HEADERS.account]: z.string().meta({
    description: "the signer's SS58 account: must be this coordinator's own (`account` in GET /v1/info)",
  }),
  [SIGNATURE_HEADERS.audience]: z.string().meta({
    description: 'the coordinator the request is meant for: its `peerId` from GET /v1/info',
  }),
  [SIGNATURE_HEADERS.nonce]: z.string().meta({
    description: '16 random bytes, 32 lowercase hex characters, never used before by this account here',
  }),
  [SIGNATURE_HEADERS.expiresAt]: z.string().meta({
    description: `ms since the epoch after which the signature is refused; at most ${MAX_SIGNATURE_TTL_MS / 60_000} minutes ahead`,
  }),
  [SIGNATURE_HEADERS.signature]: z.string().meta({
    description: `sr25519 signature (128 lowercase hex characters) by the account of the UTF-8 bytes of "ailink/fragment-request/v1\\n" + JSON.stringify(["${CREATE_TASK_OP}", sha256hex(body), byteLength(body), audience, account, nonce, expiresAt])`,
  }),
});

const count = z.number().int().min(0);

export const InfoSchema = z
  .object({
    peerId: z.string().meta({ description: 'libp2p peer id to dial for the round protocol' }),
    addrs: z.array(z.string()).meta({ description: 'multiaddrs the coordinator listens on' }),
    account: z.string().meta({ description: 'the chain account that creates tasks and records rounds' }),
    version: z.string(),
    admissions: z
      .object({
        queued: count.meta({ description: 'admissions waiting to be submitted' }),
        inFlight: count.meta({ description: 'admissions in the extrinsic being recorded now' }),
        batch: count.meta({ description: 'admissions per extrinsic at most' }),
      })
      .meta({
        description:
          'what a join now would wait behind: a participant sets its join deadline from this and the block time it reads from the chain',
      }),
  })
  .meta({ description: 'the coordinator' });

const Status = z.enum(['running', 'finished']);
const epochMs = z.number().meta({ description: 'ms since the Unix epoch' });

export const TaskSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  status: Status,
  roundsDone: count,
  roundsPlanned: count,
  createdAt: epochMs,
});

const TaskFields = z.object({
  id: z.string(),
  digest: z.string().meta({ description: 'SHA-256 of the canonical spec, as recorded on chain' }),
  spec: SpecSchema,
});
export const TaskCreatedSchema = TaskFields.meta({ description: 'created and recorded on chain' });

export const TaskDetailSchema = TaskFields.extend({
  status: Status,
  createdAt: epochMs,
  initialModel: z
    .object({ fid: z.string(), hash: z.string() })
    .nullable()
    .meta({ description: "round 0's model; null until the coordinator has prepared it" }),
}).meta({ description: 'the task' });

// Accuracy and loss pass through JSON in the store, where a NaN from a diverged model becomes null: say so rather
// than fail the whole list in the serializer.
const metric = z.number().nullable();

const RoundFields = z.object({
  task: z.string(),
  round: count,
  attempt: count,
  modelFid: z.string().meta({ description: 'storage id of the aggregated model' }),
  modelHash: z.string(),
  manifestFid: z.string().meta({ description: "storage id of the round's manifest (anchored on chain)" }),
  manifestDigest: z.string(),
  accuracy: metric,
  loss: metric,
  survivors: count.meta({ description: 'participants whose update is in the aggregate' }),
  cohort: count.meta({ description: 'participants selected for the round' }),
  seconds: z.number(),
  bytes: count.meta({ description: 'bytes of updates stored for the round' }),
  finishedAt: epochMs,
});
export const RoundSchema = RoundFields.meta({
  id: 'Round',
  description: 'a finished round, as anchored on chain',
});

export const MetricSchema = RoundFields.pick({
  round: true,
  accuracy: true,
  loss: true,
  survivors: true,
  seconds: true,
});

export const AttemptStatusSchema = z
  .object({
    round: count,
    attempt: count,
    phase: z.string(),
    expecting: z.array(z.string()).meta({ description: 'accounts the current stage still waits for' }),
    deadline: epochMs.meta({
      description: 'when the current stage gives up on the silent (ms since the epoch)',
    }),
  })
  .nullable()
  .meta({ description: 'the open attempt, or null when none is open' });

// A participant's peer addresses are stored for dialling back but not published: the list is readable by anyone.
export const ParticipantSchema = z
  .object({
    account: z.string(),
    identityKey: z.string().meta({ description: 'Ed25519 round-signing key (hex)' }),
    joinedAt: epochMs,
    lastSeen: epochMs,
  })
  .meta({ id: 'Participant' });

export const JoinBodySchema = z.strictObject({
  account: AddressSchema,
  identityKey: hex(32).meta({ description: "the participant's Ed25519 round-signing public key" }),
  signature: hex(64).meta({
    description:
      'sr25519 signature of admissionMessage(genesisHash, task, identityKey) by account, over <Bytes>…</Bytes>',
  }),
  readerKey: hex(32).meta({
    description: "the participant's X25519 reader key: a task's private models are wrapped for it",
  }),
  signedAt: z.number().int().nonnegative().meta({
    description:
      'when the participant signed joinSignature, ms since the epoch (within 5 minutes of the coordinator, and later than its last accepted join: an equal or older one is AUTH_REPLAYED)',
  }),
  joinSignature: hex(64).meta({
    description:
      'sr25519 signature of joinMessage(task, account, identityKey, readerKey, signedAt, peer.peerId) by account',
  }),
  peer: z.strictObject({
    peerId: z.string().min(1).max(128),
    addrs: z.array(z.string().min(1).max(512)).max(64),
  }),
});

export const JoinedSchema = z
  .object({ admitted: z.literal(true), account: z.string() })
  .meta({ description: 'joined (again: a repeated join only refreshes the peer and lastSeen)' });

const TaskParams = z.object({ id: z.string().min(1).max(100).meta({ description: 'task id' }) });

// 4xx/5xx replies go through the route's serializer too, so every route declares them (and the docs show them). The
// content form carries a description while keeping the `$ref` to the Error component.
const failures = {
  '4xx': {
    description: 'refused: see error.code (TASK_NOT_FOUND, INVALID_INPUT, ROUND_NOT_ADMITTED, …)',
    content: { 'application/json': { schema: ErrorBodySchema } },
  },
  '5xx': {
    description: 'failed on the coordinator',
    content: { 'application/json': { schema: ErrorBodySchema } },
  },
} as const;

/**
 * Builds the coordinator's HTTP app (not listening: call `listen`, or `inject` in tests). Refusals are
 * `{ error: { code, message } }` with the status of the code: AilinkErrors map through `httpStatusOf`, schema
 * failures are 400 INVALID_INPUT naming the field, unknown routes 404 NOT_FOUND, bodies over BODY_LIMIT 413
 * BODY_TOO_LARGE, and anything unexpected 500 INTERNAL with a generic message (the details go to `deps.log`).
 */
export function buildApp(deps: HttpDeps): FastifyInstance {
  const { coordinator } = deps;
  const limits: HttpLimits = { ...HTTP_LIMITS, ...deps.limits };
  const clock = deps.clock ?? systemClock;
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger: false,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    // Errors the router raises before any route is found (an over-long or malformed URL) skip the error handler.
    frameworkErrors: (err, _request, reply) => {
      const { status, body } = refusalOf(err);
      // The option's reply type is generic over route schemas that do not exist yet; this reply has none.
      return (reply as FastifyReply).code(status).send(body);
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.setErrorHandler((err, request, reply) => {
    const { status, body } = refusalOf(err);
    if (status >= 500 && !hasCode(err)) {
      const cause = err instanceof ResponseSerializationError ? `: ${err.cause.message}` : '';
      deps.log?.(`${request.method} ${request.url} failed: ${(err as Error).stack ?? String(err)}${cause}`);
    }
    return reply.code(status).send(body);
  });
  // Before routing and body parsing: a refused request costs a header check.
  const allowedHosts = new Set(limits.hosts.map((h) => h.toLowerCase()));
  const buckets = new Map<string, { tokens: number; at: number }>();
  app.addHook('onRequest', async (request, reply) => {
    const host = hostName(request.headers.host);
    if (allowedHosts.size > 0 && (host === undefined || !allowedHosts.has(host)))
      return reply
        .code(httpStatusOf('HOST_NOT_ALLOWED'))
        .send(
          errorBody(
            'HOST_NOT_ALLOWED',
            `this coordinator answers to ${[...allowedHosts].join(', ')}, not ${JSON.stringify(request.headers.host ?? '')}`,
          ),
        );
    const now = clock.now();
    const client = request.ip;
    const bucket = buckets.get(client) ?? { tokens: limits.perMinute, at: now };
    buckets.delete(client); // re-inserted last: the map's order is least recently seen first
    bucket.tokens = Math.min(
      limits.perMinute,
      bucket.tokens + ((now - bucket.at) * limits.perMinute) / 60_000,
    );
    bucket.at = now;
    buckets.set(client, bucket);
    if (buckets.size > MAX_TRACKED_CLIENTS) buckets.delete(buckets.keys().next().value!);
    if (bucket.tokens < 1) {
      const waitS = Math.ceil(((1 - bucket.tokens) * 60) / limits.perMinute);
      return reply
        .code(httpStatusOf('RATE_LIMITED'))
        .header('retry-after', String(waitS))
        .send(
          errorBody(
            'RATE_LIMITED',
            `${client} sent more than ${limits.perMinute} requests a minute; retry in ${waitS} s`,
          ),
        );
    }
    bucket.tokens -= 1;
  });

  // One verification per task and round at a time: requests that come while one runs share its report. Nothing is
  // kept after it: "Verify again" must see storage as it is now (the rate limit bounds how often that is asked).
  const audits = new Map<string, Promise<AuditReport>>();
  const sharedAudit = (audit: NonNullable<HttpDeps['audit']>, task: string, round?: number) => {
    const key = `${task}/${round ?? 'all'}`;
    const running = audits.get(key);
    if (running !== undefined) return running;
    const report = audit(task, round).finally(() => audits.delete(key));
    audits.set(key, report);
    return report;
  };

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(httpStatusOf('NOT_FOUND'))
      .send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}`)),
  );

  // swagger records routes through an onRoute hook, so it must be loaded before the routes: they live in a plugin
  // registered after it (avvio loads plugins in order).
  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'AI-LINK coordinator',
        description: 'Tasks, rounds and admissions of an AI-LINK federated-learning coordinator.',
        version: API_VERSION,
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });

  app.register(async (scope) => {
    const api = scope.withTypeProvider<ZodTypeProvider>();

    api.get('/openapi.json', { schema: { hide: true } }, () => scope.swagger());

    api.get(
      '/v1/info',
      {
        schema: {
          summary: 'The coordinator peer to dial for the round protocol, and its chain account',
          response: { 200: InfoSchema, ...failures },
        },
      },
      () => ({ ...deps.info(), admissions: coordinator.admissionLoad() }),
    );

    api.get(
      '/v1/tasks',
      {
        schema: {
          summary: 'All tasks, oldest first',
          response: { 200: z.array(TaskSummarySchema).meta({ description: 'the tasks' }), ...failures },
        },
      },
      () =>
        coordinator.tasks().map((t) => ({
          id: t.id,
          name: t.spec.name,
          status: t.status,
          roundsDone: coordinator.rounds(t.id).length,
          roundsPlanned: t.spec.rounds,
          createdAt: t.createdAt,
        })),
    );

    // Task creation is signed over the exact bytes of its body, so its route lives in a scope of its own whose JSON
    // parser keeps them (fastify's own parser does the parsing: the same limit and prototype-poisoning checks).
    scope.register(async (signed) => {
      const bodies = new WeakMap<object, Buffer>();
      const parseJson = signed.getDefaultJsonParser('error', 'error');
      signed.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
        bodies.set(request, body as Buffer);
        parseJson(request, (body as Buffer).toString('utf8'), done);
      });
      const ownerOnly = createOwnerGuard({ clock, nonces: deps.nonces }, { identity: () => deps.info() });
      signed.withTypeProvider<ZodTypeProvider>().post(
        '/v1/tasks',
        {
          schema: {
            summary:
              "Create a task (recorded on chain with the coordinator's account); only that account may, signing the request",
            description: [
              `Signed by this coordinator's own chain account, in the ${Object.values(SIGNATURE_HEADERS).join(', ')} headers`,
              "(the scheme of the miners' fragment requests: one audience, one use, a short life), over the exact body bytes:",
              `any other signer is refused with 403 AUTH_NOT_AUTHORISED, a missing signature with 401 AUTH_MISSING, a changed`,
              'body with 401 AUTH_BAD_SIGNATURE, an expired one with 401 AUTH_EXPIRED, one for another coordinator with',
              '401 AUTH_WRONG_AUDIENCE and a repeated nonce with 409 AUTH_REPLAYED; a refused request creates nothing.',
              '`ailink task create FILE.json --coordinator URL --key FILE` signs and sends one. The coordinator fills in',
              'its keys and the initial model hash.',
            ].join(' '),
            headers: SignatureHeadersSchema,
            // Loose on purpose: createTask runs the one full check (parseTaskSpec) and names every wrong field.
            body: z.looseObject({}).meta({ description: 'a TaskInput (see components.schemas.TaskInput)' }),
            response: { 201: TaskCreatedSchema, ...failures },
          },
          // Before the schemas: whoever may not create tasks learns nothing about what a valid body looks like.
          preValidation: async (request) => {
            await ownerOnly(CREATE_TASK_OP, bodies.get(request) ?? new Uint8Array(), request.headers);
          },
        },
        async (request, reply) => {
          const row = await coordinator.createTask(request.body);
          return reply.code(201).send({ id: row.id, digest: row.digest, spec: row.spec });
        },
      );
    });

    api.get(
      '/v1/tasks/:id',
      {
        schema: { summary: 'One task', params: TaskParams, response: { 200: TaskDetailSchema, ...failures } },
      },
      (request) => {
        const { id } = request.params;
        const task = coordinator.task(id);
        if (task === undefined) throw new AilinkError('TASK_NOT_FOUND', `no task ${id} on this coordinator`);
        return {
          id: task.id,
          digest: task.digest,
          spec: task.spec,
          status: task.status,
          createdAt: task.createdAt,
          initialModel: coordinator.initialModel(id) ?? null,
        };
      },
    );

    api.get(
      '/v1/tasks/:id/rounds',
      {
        schema: {
          summary: 'The finished rounds, in order',
          params: TaskParams,
          response: { 200: z.array(RoundSchema).meta({ description: 'the finished rounds' }), ...failures },
        },
      },
      (request) => coordinator.rounds(request.params.id),
    );

    api.get(
      '/v1/tasks/:id/status',
      {
        schema: {
          summary: 'The open round attempt, if any',
          params: TaskParams,
          response: { 200: AttemptStatusSchema, ...failures },
        },
      },
      (request) => coordinator.status(request.params.id),
    );

    api.get(
      '/v1/tasks/:id/participants',
      {
        schema: {
          summary: 'Participants that have joined',
          params: TaskParams,
          response: { 200: z.array(ParticipantSchema).meta({ description: 'by account' }), ...failures },
        },
      },
      (request) => coordinator.participants(request.params.id),
    );

    api.get(
      '/v1/tasks/:id/metrics',
      {
        schema: {
          summary: 'Per-round accuracy, loss, survivors and duration (for plots)',
          params: TaskParams,
          response: {
            200: z.array(MetricSchema).meta({ description: 'one entry per finished round' }),
            ...failures,
          },
        },
      },
      (request) =>
        coordinator.rounds(request.params.id).map((r) => ({
          round: r.round,
          accuracy: r.accuracy,
          loss: r.loss,
          survivors: r.survivors,
          seconds: r.seconds,
        })),
    );

    api.get(
      '/v1/tasks/:id/audit',
      {
        schema: {
          summary:
            "Verify the task's lineage against the chain and storage now (what the model card reports)",
          params: TaskParams,
          querystring: AuditQuerySchema,
          response: { 200: AuditReportSchema, ...failures },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (coordinator.task(id) === undefined)
          throw new AilinkError('TASK_NOT_FOUND', `no task ${id} on this coordinator`);
        if (deps.audit === undefined)
          return reply
            .code(httpStatusOf('AUDIT_UNAVAILABLE'))
            .send(
              errorBody(
                'AUDIT_UNAVAILABLE',
                `this coordinator runs without an auditor; verify with \`ailink audit verify --task ${id}\` against a chain node`,
              ),
            );
        return sharedAudit(deps.audit, id, request.query.round);
      },
    );

    api.post(
      '/v1/tasks/:id/join',
      {
        schema: {
          summary: 'Join a task as an admitted account, registering the round-signing key',
          params: TaskParams,
          body: JoinBodySchema,
          response: { 200: JoinedSchema, ...failures },
        },
      },
      async (request) => {
        const row = await coordinator.join(request.params.id, request.body);
        return { admitted: true as const, account: row.account };
      },
    );

    registerExplorer(scope);
  });

  return app;
}

/** The host name of a Host header, lowercase, without its port or an IPv6 address's brackets. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed) return bracketed[1]!.toLowerCase();
  return header.replace(/:\d+$/, '').toLowerCase();
}

function errorBody(code: HttpErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The status and body for anything a route, a hook or fastify itself threw. */
function refusalOf(err: unknown): { status: number; body: ErrorBody } {
  if (hasCode(err)) return { status: httpStatusOf(err.code), body: errorBody(err.code, err.message) };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as FastifyError).validationContext ?? 'body';
    const problems = err.validation.map((issue) => {
      const path = issue.instancePath.split('/').filter(Boolean).join('.');
      return `${path || where}: ${issue.message}`;
    });
    return { status: 400, body: errorBody('INVALID_INPUT', problems.join('; ')) };
  }
  // Anything may be thrown, even a string or null: only an object can carry fastify's statusCode.
  const status =
    typeof err === 'object' && err !== null ? (err as Partial<FastifyError>).statusCode : undefined;
  if (err instanceof ResponseSerializationError || status === undefined || status < 400 || status >= 500)
    return {
      status: 500,
      body: errorBody('INTERNAL', 'internal error; the coordinator log has the details'),
    };
  // fastify's own refusals (unparsable JSON, oversized or unsupported bodies): keep the status, name it.
  if (status === 413)
    return {
      status,
      body: errorBody('BODY_TOO_LARGE', `request body exceeds the limit of ${BODY_LIMIT} bytes`),
    };
  const code: HttpErrorCode =
    status === 400
      ? 'INVALID_INPUT'
      : status === 404
        ? 'NOT_FOUND'
        : status === 415
          ? 'UNSUPPORTED_MEDIA_TYPE'
          : 'REQUEST_REFUSED';
  return { status, body: errorBody(code, (err as Error).message) };
}
