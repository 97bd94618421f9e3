import { AilinkError } from '../shared/errors.ts';
import type { CallArgs } from './calls.ts';
import type { ChainCall } from './client.ts';
import { protocolCall } from './config.ts';
import { MAX_REMARK_BYTES } from './remark.ts';

type Declaration = CallArgs<'fileBank.uploadDeclaration'>;
type Receipt = CallArgs<'fileBank.transferReport'>['receipts'][number];

/**
 * The most bytes of remarks one upload's extrinsic carries. Measured on the dev chain: 28 remarks of 128 KiB (3.5 MiB)
 * are taken, 32 (4 MiB) are refused as exhausting the block (a normal extrinsic gets 75 % of 5 MiB). 3 MiB leaves room
 * for the report, the signature and whatever else shares the block.
 */
export const MAX_DECLARATION_BYTES = 3 * 1024 * 1024;

/**
 * The most segments one upload declares: what MAX_DECLARATION_BYTES holds at 12 fragments a segment with encryption
 * tags (test/chain/declare.test.ts checks that it fits): 93.75 GiB at 32 MiB segments, 187.5 MiB with the test profile.
 */
export const MAX_DECLARED_SEGMENTS = 3000;

/**
 * The calls that declare an upload and report its miners' receipts, for one extrinsic (a `batchAll`): the declaration
 * in as many remarks as its segments need — the first with `segmentCount`, the rest `fileBank.declareSegments` — then
 * the transfer report, so the file is Active in the block that declares it.
 * @throws INVALID_INPUT when all of it would not fit one extrinsic (MAX_DECLARATION_BYTES)
 */
export function declarationCalls(
  declaration: Declaration,
  receipts: readonly Receipt[],
  /** Columns no miner took (`deferrableColumns`): restoral orders from the start. */
  deferred: readonly number[] = [],
): ChainCall[] {
  const report = protocolCall('fileBank.transferReport', {
    fid: declaration.fid,
    receipts: [...receipts],
    ...(deferred.length === 0 ? {} : { deferred: [...deferred] }),
  });
  const whole = fitting(() => protocolCall('fileBank.uploadDeclaration', declaration));
  const calls: ChainCall[] = [];
  if (whole !== undefined) calls.push(whole);
  else {
    const { segments } = declaration;
    const first = longest(segments.length - 1, (n) =>
      protocolCall('fileBank.uploadDeclaration', {
        ...declaration,
        segments: segments.slice(0, n),
        segmentCount: segments.length,
      }),
    );
    calls.push(first.call);
    for (let at = first.n; at < segments.length; ) {
      const next = longest(segments.length - at, (n) =>
        protocolCall('fileBank.declareSegments', {
          fid: declaration.fid,
          deal: declaration.deal,
          segments: segments.slice(at, at + n),
        }),
      );
      calls.push(next.call);
      at += next.n;
    }
  }
  calls.push(report);
  const bytes = remarkBytes(calls);
  if (bytes > MAX_DECLARATION_BYTES) {
    throw new AilinkError(
      'INVALID_INPUT',
      `the declaration of ${declaration.segments.length} segments takes ${bytes} bytes of remarks; one extrinsic carries at most ${MAX_DECLARATION_BYTES} (about ${MAX_DECLARED_SEGMENTS} segments): store the object in smaller parts`,
    );
  }
  return calls;
}

/** The bytes of remarks `calls` carry: what MAX_DECLARATION_BYTES bounds in one extrinsic. */
export const remarkBytes = (calls: readonly ChainCall[]): number =>
  calls.reduce((sum, c) => sum + (c.kind === 'remark' ? c.payload.byteLength : 0), 0);

/** The call, or undefined when its remark would exceed MAX_REMARK_BYTES. */
function fitting(make: () => ChainCall): ChainCall | undefined {
  try {
    return make();
  } catch (err) {
    if (err instanceof AilinkError && err.message.includes(`the limit is ${MAX_REMARK_BYTES}`))
      return undefined;
    throw err;
  }
}

/** The call of the most segments (1..max) that fits one remark, found by bisection (a remark grows with n). */
function longest(max: number, make: (n: number) => ChainCall): { n: number; call: ChainCall } {
  let lo = 1;
  let hi = max;
  let best = fitting(() => make(1));
  if (best === undefined) throw new AilinkError('INVALID_INPUT', 'one segment alone does not fit a remark');
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const call = fitting(() => make(mid));
    if (call === undefined) hi = mid - 1;
    else {
      lo = mid;
      best = call;
    }
  }
  // `best` changes only with `lo`: it is the call of `lo` segments.
  return { n: lo, call: best };
}
