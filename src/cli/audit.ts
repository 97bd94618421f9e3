import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeModelPackage } from '../../models/index.ts';
import {
  type AuditFinding,
  type AuditReport,
  auditTask,
  type BundleVerification,
  breaksLineage,
  collectBundle,
  describeBundle,
  encodeBundle,
  modelScores,
  renderReport,
  serveAuditorExplorer,
  TASK_ID,
  verifyBundle,
} from '../audit/index.ts';
import { servedHostNames } from '../node/coordinator.ts';
import { codeVersion, openSession, type SessionConfig } from '../node/index.ts';
import { createTrainingPool } from '../participant/train-pool.ts';
import type { Account } from '../shared/account.ts';
import { systemClock, systemRandom } from '../shared/clock.ts';
import { AilinkError, hasCode } from '../shared/errors.ts';
import { decodeModelBytes, parseTaskSpec } from '../task/index.ts';
import { describeEvaluation, scoreReport } from './eval-data.ts';
import { writeTfjsModel } from './model-files.ts';
import { NETWORK_OPTIONS, type NetworkValues, networkAndKey } from './network-flags.ts';

/**
 * The compliance officer's and the researcher's commands. Each opens its own view of the network — its own chain
 * connection and its own index of the chain, under the network dir — so nothing the coordinator says is taken on
 * trust: lineage comes from the chain, bytes from the miners, checked against what the chain recorded.
 */

const COMMON = {
  ...NETWORK_OPTIONS,
  task: { type: 'string' },
  round: { type: 'string' },
  json: { type: 'boolean' },
  'max-price': { type: 'string' },
} as const;

/** `--max-price PLANCK`: the most this account pays per model under terms it is not a free reader of (default 0). */
function maxPriceOption(value: string | undefined): bigint {
  if (value === undefined) return 0n;
  if (!/^(0|[1-9][0-9]{0,38})$/.test(value))
    throw new AilinkError(
      'INVALID_INPUT',
      `--max-price: expected a planck amount (a whole number ≥ 0), got ${JSON.stringify(value)}`,
    );
  return BigInt(value);
}

function roundOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new AilinkError(
      'INVALID_INPUT',
      `--round: expected a whole number ≥ 0, got ${JSON.stringify(value)}`,
    );
  return Number(value);
}

function taskOption(value: string | undefined, command: string): string {
  if (value === undefined || value === '')
    throw new AilinkError(
      'INVALID_INPUT',
      `${command}: --task ID is required (the task id the coordinator printed)`,
    );
  return value;
}

/** The network flags, `--key` (default: the network's operator key; any account can read public lineage objects), `--max-price`. */
async function auditorFor(values: NetworkValues & { 'max-price'?: string | undefined }) {
  const maxPrice = maxPriceOption(values['max-price']);
  const { session, account } = await networkAndKey(values);
  return openAuditor(session, account, { maxPrice });
}

/** A pulled model: where its files are and what it is. */
export interface PulledModel {
  readonly task: string;
  readonly round: number;
  readonly manifest: AuditReport['rounds'][number]['manifest'];
  readonly model: { fid: string; hash: string; name: string };
  readonly accuracy: number | null;
  readonly verifiedAtBlock: number;
  /** model.json of the TensorFlow.js files. */
  readonly files: string;
}

export interface AuditorOptions {
  /**
   * Objects under market terms (a task's private models) that this account cannot read yet are requested
   * (`market.request`), paying up to this many planck per object to its owner (default 0: only as a listed reader).
   */
  readonly maxPrice?: bigint;
  /** How long to wait for a requested key in all (default 50 s: within the audit's 60 s per object). */
  readonly accessDeadlineMs?: number;
}

/** An independent view of the network for auditing and pulling: its own chain connection, index and storage client. */
export async function openAuditor(config: SessionConfig, account: Account, options: AuditorOptions = {}) {
  const net = await openSession(config, account, 'auditor', { clock: systemClock, random: systemRandom });
  try {
    /**
     * Reads an object; one this account has no key for (ACCESS_DENIED: a private model) is requested under its
     * market terms first — free for a listed reader, paid up to maxPrice otherwise — then read with the released key.
     * A refusal stays ACCESS_DENIED with the chain's reason.
     */
    const denied = new Map<string, AilinkError>();
    const fetch = async (fid: string, o: { signal?: AbortSignal } = {}): Promise<Uint8Array> => {
      try {
        return await net.get(fid, o);
      } catch (err) {
        if (!hasCode(err, 'ACCESS_DENIED')) throw err;
        try {
          await net.market.requestAccess(fid, {
            maxPrice: options.maxPrice ?? 0n,
            deadlineMs: options.accessDeadlineMs ?? 50_000,
            ...(o.signal === undefined ? {} : { signal: o.signal }),
          });
        } catch (refused) {
          if (hasCode(refused, 'ACCESS_DENIED')) denied.set(fid, refused);
          throw refused;
        }
        return net.get(fid, o);
      }
    };
    return {
      net,
      /** The auditor's account (SS58). */
      account: account.address,
      fetch,
      /** Audits the task; `objects` (when given) keeps every fetched object's bytes for the caller. */
      async run(
        task: string,
        round: number | undefined,
        quiet: boolean,
        objects?: Map<string, Uint8Array | Error>,
      ): Promise<AuditReport> {
        await net.indexer.sync();
        return auditTask(
          {
            state: net.indexer.state,
            atBlock: net.indexer.height(),
            fetch: (fid, o) => fetch(fid, o),
          },
          task,
          {
            ...(round === undefined ? {} : { round }),
            ...(objects === undefined ? {} : { objects }),
            onProgress: quiet
              ? undefined
              : ({ fetched, wanted }) => process.stderr.write(`\rfetched ${fetched}/${wanted} objects`),
          },
        ).finally(() => quiet || process.stderr.write('\r\x1b[2K'));
      },
      /**
       * Writes the last audited round's model as TensorFlow.js files (+ provenance.json) into `dir`, refusing unless
       * the whole report verifies and the bytes fetched hash to what the anchored manifest says.
       * @throws MODEL_UNVERIFIED
       */
      async pull(report: AuditReport, dir: string): Promise<PulledModel> {
        const round = report.rounds.at(-1);
        // A model this account may not read is refused as such (not as a broken lineage): say why, and how to pay.
        const refusal = (round?.model && denied.get(round.model.fid)) ?? [...denied.values()][0];
        if (refusal !== undefined) throw refusal;
        // Every round up to the pulled one must verify: a model is only as good as its lineage.
        if (!report.ok || round?.model == null) {
          const first = [...report.findings, ...report.rounds.flatMap((x) => x.findings)].find(breaksLineage);
          throw new AilinkError(
            'MODEL_UNVERIFIED',
            first
              ? `refusing the model of ${report.task}: ${first.code} at ${first.where}: ${first.message} (\`ailink audit verify --task ${report.task}\` lists every finding)`
              : `refusing: ${report.task} has no anchored round to pull`,
          );
        }
        const bytes = await fetch(round.model.fid, { signal: AbortSignal.timeout(180_000) });
        const hash = createHash('sha256').update(bytes).digest('hex');
        if (hash !== round.model.hash)
          throw new AilinkError(
            'MODEL_UNVERIFIED',
            `model ${round.model.fid} hashes to ${hash}, the anchored manifest says ${round.model.hash}`,
          );
        const { weights } = decodeModelBytes(bytes);
        // The topology comes from the model package the verified spec names, checked against its digest.
        const spec = parseTaskSpec(report.spec);
        const pkg = await fetch(spec.model.fid, { signal: AbortSignal.timeout(180_000) });
        if (createHash('sha256').update(pkg).digest('hex') !== spec.model.digest)
          throw new AilinkError(
            'MODEL_UNVERIFIED',
            `the model package ${spec.model.fid} does not hash to the spec's digest ${spec.model.digest}`,
          );
        const files = await writeTfjsModel(dir, decodeModelPackage(pkg).topology, weights);
        const pulled: PulledModel = {
          task: report.task,
          round: round.round,
          manifest: round.manifest,
          model: round.model,
          accuracy: round.metrics?.accuracy ?? null,
          verifiedAtBlock: report.atBlock,
          files,
        };
        await writeFile(join(dir, 'provenance.json'), `${JSON.stringify(pulled, null, 2)}\n`);
        return pulled;
      },
      close: () => net.close(),
    };
  } catch (err) {
    await net.close();
    throw err;
  }
}

/** Human lines: one per round, then every finding pinned to where it broke. */
export function describeReport(r: AuditReport): string[] {
  const lines = [`task ${r.task} (chain block ${r.atBlock}, ${r.chain?.rounds ?? 0} rounds anchored)`];
  // ✗ breaks the lineage; ! reports storage health (breaksLineage).
  const mark = (f: AuditFinding) => (breaksLineage(f) ? '✗' : '!');
  for (const f of r.findings) lines.push(`  ${mark(f)} ${f.code} ${f.where}: ${f.message}`);
  const scores = modelScores(r.rounds);
  for (const [i, x] of r.rounds.entries()) {
    const score = scores[i];
    const acc = score ? `${(score.accuracy * 100).toFixed(2)} %` : '—';
    lines.push(
      `  round ${x.round} ${x.ok ? '✓' : '✗'}  manifest ${x.manifest.fid.slice(0, 12)}…  model ${x.model?.hash.slice(0, 12) ?? '—'}…  ${x.survivors.length}/${x.cohort.length} survivors  ${acc}`,
    );
    if (x.eval) lines.push(`      ${describeEvaluation(x.eval)}`);
    for (const f of x.findings) lines.push(`      ${mark(f)} ${f.code} ${f.where}: ${f.message}`);
  }
  const all = [...r.findings, ...r.rounds.flatMap((x) => x.findings)];
  const breaking = all.filter(breaksLineage).length;
  const notes = all.length - breaking;
  const noted =
    notes === 0 ? '' : ` (${notes} storage note(s): columns under repair or on miners in bad standing)`;
  lines.push(
    r.ok
      ? `verified: ${r.rounds.length} round(s), every check holds${noted}`
      : `BROKEN: ${breaking} finding(s)${noted}`,
  );
  return lines;
}

/**
 * The model package the verified spec names (its topology scores the models; scoreReport checks its digest), or null
 * without a readable spec.
 */
export async function modelPackageOf(
  report: AuditReport,
  fetch: (fid: string, o: { signal: AbortSignal }) => Promise<Uint8Array>,
): Promise<Uint8Array | null> {
  if (report.spec === null) return null;
  return fetch(parseTaskSpec(report.spec).model.fid, { signal: AbortSignal.timeout(180_000) });
}

/**
 * `--eval DATA_SPEC`: every round's model scored on the data on one training-pool worker, beside the claims.
 * @throws as scoreReport (DATA_SCHEMA_MISMATCH naming round and field for data that does not fit)
 */
export async function evaluateReport(
  report: AuditReport,
  objects: ReadonlyMap<string, Uint8Array | Error>,
  data: string,
  pkg: Uint8Array | null,
): Promise<AuditReport> {
  if (pkg === null) {
    console.error('--eval: the task spec could not be read, so no model was scored');
    return report;
  }
  const pool = createTrainingPool({ threads: 1 });
  try {
    return await scoreReport({ report, objects, data, pkg, pool });
  } finally {
    await pool.close();
  }
}

/**
 * `ailink audit serve [--task ID] [--listen HOST:PORT]`: the lineage explorer from this auditor's own session (its
 * own chain connection, index and storage client), until a signal. Nothing it shows comes from the coordinator.
 */
async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...COMMON, listen: { type: 'string' }, 'cache-seconds': { type: 'string' } },
  });
  if (values.round !== undefined || values.json)
    throw new AilinkError('INVALID_INPUT', 'audit serve: --round and --json are for verify and report');
  const task = values.task;
  if (task !== undefined && !TASK_ID.test(task))
    throw new AilinkError(
      'INVALID_INPUT',
      `--task: expected 1–64 of A–Z a–z 0–9 . _ -, got ${JSON.stringify(task)}`,
    );
  const cache = values['cache-seconds'];
  if (cache !== undefined && !/^\d{1,5}$/.test(cache))
    throw new AilinkError(
      'INVALID_INPUT',
      `--cache-seconds: expected a whole number of seconds, got ${JSON.stringify(cache)}`,
    );
  // Loaded here, not at the top: args.ts unrefs the IPC channel of a process started with one as soon as it is
  // imported, and this module is imported by tests that run in such processes (vitest's forks).
  const { untilSignal } = await import('./args.ts');
  const { parseListen } = await import('./gateway.ts');
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:8780');
  const auditor = await auditorFor(values);
  try {
    const server = await serveAuditorExplorer(
      {
        account: auditor.account,
        state: auditor.net.indexer.state,
        height: () => auditor.net.indexer.height(),
        sync: (signal) => auditor.net.indexer.sync(undefined, { signal }),
        fetch: (fid, o) => auditor.fetch(fid, o),
      },
      { host, port },
      {
        version: codeVersion().version,
        hosts: servedHostNames(host, undefined),
        ...(task === undefined ? {} : { task }),
        ...(cache === undefined ? {} : { cacheMs: Number(cache) * 1000 }),
      },
    );
    console.log(
      `lineage explorer of auditor ${auditor.account}${task === undefined ? '' : ` for ${task}`}: ${server.url}`,
    );
    await untilSignal();
    await server.close();
  } finally {
    await auditor.close();
  }
}

/**
 * `ailink audit export --task ID --out FILE [--round N]`: the audit `verify` runs, then every block the chain state is
 * folded from and every object the audit read, with the report, as one bundle (src/audit/bundle.ts). The bundle is
 * written whatever the verdict (evidence of a broken lineage travels too); the exit code is verify's.
 */
async function exportCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { ...COMMON, out: { type: 'string' } } });
  const task = taskOption(values.task, 'audit export');
  if (values.out === undefined || values.out === '')
    throw new AilinkError('INVALID_INPUT', 'audit export: --out FILE is required (where the bundle goes)');
  const round = roundOption(values.round);
  const auditor = await auditorFor(values);
  let report: AuditReport;
  let bundle: Uint8Array;
  try {
    const objects = new Map<string, Uint8Array | Error>();
    report = await auditor.run(task, round, Boolean(values.json), objects);
    const content = await collectBundle(auditor.net.chain, {
      task,
      round: round ?? null,
      protocol: auditor.net.indexer.config,
      report,
      objects,
      ...(values.json
        ? {}
        : { onProgress: ({ blocks, of }) => process.stderr.write(`\rread ${blocks}/${of} blocks`) }),
    });
    if (!values.json) process.stderr.write('\r\x1b[2K');
    bundle = encodeBundle(content);
  } finally {
    await auditor.close();
  }
  await mkdir(dirname(values.out), { recursive: true });
  await writeFile(values.out, bundle);
  const digest = createHash('sha256').update(bundle).digest('hex');
  if (values.json)
    console.log(
      JSON.stringify({
        bundle: values.out,
        digest,
        bytes: bundle.byteLength,
        ok: report.ok,
        atBlock: report.atBlock,
      }),
    );
  else
    console.log(
      `wrote ${values.out} (${bundle.byteLength} bytes, sha256:${digest}): ${report.atBlock} blocks, the objects read and the report; check it offline with \`ailink audit verify --bundle ${values.out}\``,
    );
  failUnlessOk(report);
}

/** `audit verify|report --bundle FILE [--expect-tip HASH]`: the audit re-derived offline from a bundle. */
async function bundleCommand(
  sub: 'verify' | 'report',
  values: { bundle?: string; 'expect-tip'?: string; json?: boolean; format?: string; out?: string },
): Promise<void> {
  const file = values.bundle!;
  const expectTip = values['expect-tip'];
  if (expectTip !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(expectTip))
    throw new AilinkError(
      'INVALID_INPUT',
      `--expect-tip: expected a block hash (0x and 64 hex digits), got ${JSON.stringify(expectTip)}`,
    );
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new AilinkError('NOT_FOUND', `--bundle: cannot read ${file} (${(cause as Error).message})`, {
      cause,
    });
  }
  const v = await verifyBundle(bytes, expectTip === undefined ? {} : { expectTip });
  if (sub === 'verify') {
    if (values.json) console.log(JSON.stringify(v));
    else {
      for (const line of describeBundle(v)) console.log(line);
      if (v.report !== null) for (const line of describeReport(v.report)) console.log(line);
    }
  } else if (v.report !== null) {
    await writeReport(v.report, (values.format ?? 'md') as ReportFormat, values.out);
  }
  failUnlessBundleOk(v);
}

function failUnlessBundleOk(v: BundleVerification): void {
  const first = v.findings[0];
  if (first !== undefined)
    throw new AilinkError(
      'AUDIT_FAILED',
      `the bundle sha256:${v.digest} does not verify: ${first.code}${first.round === null ? '' : ` (round ${first.round})`} at ${first.where}: ${first.message}`,
    );
  if (v.report !== null) failUnlessOk(v.report);
}

function failUnlessOk(report: AuditReport): void {
  if (!report.ok) {
    const first = [...report.findings, ...report.rounds.flatMap((x) => x.findings)].find(breaksLineage)!;
    throw new AilinkError(
      'AUDIT_FAILED',
      `the lineage of ${report.task} does not verify: ${first.code} at ${first.where}: ${first.message}`,
    );
  }
}

/** `ailink audit verify|report|export|serve` */
export async function auditCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'serve') return serveCommand(rest);
  if (sub === 'export') return exportCommand(rest);
  if (sub !== 'verify' && sub !== 'report')
    throw new AilinkError(
      'INVALID_INPUT',
      `audit: expected verify, report, export or serve, got ${JSON.stringify(sub)}`,
    );
  const { values } = parseArgs({
    args: rest,
    options: {
      ...COMMON,
      format: { type: 'string' },
      out: { type: 'string' },
      eval: { type: 'string' },
      bundle: { type: 'string' },
      'expect-tip': { type: 'string' },
    },
  });
  if (values.format !== undefined && sub === 'report' && !['html', 'md', 'json'].includes(values.format))
    throw new AilinkError(
      'INVALID_INPUT',
      `--format: expected html, md or json, got ${JSON.stringify(values.format)}`,
    );
  if (values.bundle !== undefined) {
    if (values.task !== undefined || values.round !== undefined || values.eval !== undefined)
      throw new AilinkError(
        'INVALID_INPUT',
        `audit ${sub} --bundle: the task and round are the bundle's; --task, --round and --eval are for the live chain`,
      );
    return bundleCommand(sub, values);
  }
  if (values['expect-tip'] !== undefined)
    throw new AilinkError('INVALID_INPUT', '--expect-tip: only with --bundle FILE');
  const task = taskOption(values.task, `audit ${sub}`);
  const evalData = values.eval;
  if (evalData !== undefined && (sub !== 'verify' || evalData === ''))
    throw new AilinkError(
      'INVALID_INPUT',
      sub !== 'verify'
        ? '--eval DATA_SPEC: only `audit verify` scores the models on your data'
        : '--eval: expected a data spec (e.g. csv:held-out.csv, images:DIR, fashion-mnist)',
    );
  const round = roundOption(values.round);
  const format = values.format ?? 'md';
  if (sub === 'report' && format !== 'html' && format !== 'md' && format !== 'json')
    throw new AilinkError(
      'INVALID_INPUT',
      `--format: expected html, md or json, got ${JSON.stringify(format)}`,
    );
  const auditor = await auditorFor(values);
  let report: AuditReport;
  const objects = new Map<string, Uint8Array | Error>();
  let pkg: Uint8Array | null = null;
  try {
    report = await auditor.run(task, round, Boolean(values.json), objects);
    if (evalData !== undefined) pkg = await modelPackageOf(report, auditor.fetch);
  } finally {
    await auditor.close();
  }
  if (evalData !== undefined) report = await evaluateReport(report, objects, evalData, pkg);
  if (sub === 'verify') {
    if (values.json) console.log(JSON.stringify(report));
    else for (const line of describeReport(report)) console.log(line);
  } else {
    await writeReport(report, format as ReportFormat, values.out);
  }
  failUnlessOk(report);
}

type ReportFormat = 'html' | 'md' | 'json';

/** Renders a report to `out` (its folder made), or to stdout without one. */
async function writeReport(
  report: AuditReport,
  format: ReportFormat,
  out: string | undefined,
): Promise<void> {
  const text = renderReport(report, format);
  if (out) {
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, text);
    console.error(`wrote the ${format} report to ${out}`);
  } else process.stdout.write(text);
}

/** `ailink model pull --task ID [--round N] --out DIR`: a global model, verified against the chain, as TF.js files. */
export async function modelCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'pull')
    throw new AilinkError('INVALID_INPUT', `model: expected pull, got ${JSON.stringify(sub)}`);
  const { values } = parseArgs({ args: rest, options: { ...COMMON, out: { type: 'string' } } });
  const task = taskOption(values.task, 'model pull');
  if (values.out === undefined) throw new AilinkError('INVALID_INPUT', 'model pull: --out DIR is required');
  const auditor = await auditorFor(values);
  try {
    const report = await auditor.run(task, roundOption(values.round), Boolean(values.json));
    const pulled = await auditor.pull(report, values.out);
    if (values.json) console.log(JSON.stringify(pulled));
    else
      console.log(
        `${pulled.files}: ${pulled.model.name} of ${task} round ${pulled.round} (${((pulled.accuracy ?? 0) * 100).toFixed(2)} %), lineage verified at block ${pulled.verifiedAtBlock}`,
      );
  } finally {
    await auditor.close();
  }
}
