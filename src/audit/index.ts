/**
 * Audit: a task's lineage checked against the chain — manifests, parent links, models, commitments, admissions,
 * settings, privacy budget and the standing of the miners holding it — without trusting the coordinator.
 */
export {
  BUNDLE_CODES,
  BUNDLE_MAGIC,
  BUNDLE_VERSION,
  type BundleCode,
  type BundleContent,
  type BundleFinding,
  type BundleVerification,
  collectBundle,
  describeBundle,
  encodeBundle,
  type VerifyBundleOptions,
  verifyBundle,
} from './bundle.ts';
export { type ClaimsInput, evaluateClaims, preprocessingOf, withEvaluation } from './claims.ts';
export { type ExplorerPage, type ExplorerView, explorerPage } from './explorer.ts';
export { checkLineage, type LineageInput, objectsToFetch } from './lineage.ts';
export { type RoundRecompute, recomputeAggregates } from './recompute.ts';
export {
  accuracyChartSvg,
  type ChartPoint,
  chartPointsOf,
  modelScores,
  REPORT_FORMATS,
  type ReportFormat,
  renderReport,
} from './report.ts';
export {
  AuditFindingSchema,
  type AuditorAudit,
  AuditorAuditSchema,
  type AuditorInfo,
  AuditorInfoSchema,
  type AuditorTask,
  AuditorTaskSchema,
  AuditQuerySchema,
  AuditReportSchema,
  AuditRoundSchema,
  TASK_ID,
} from './schema.ts';
export {
  type AuditorAnswer,
  type AuditorExplorer,
  type AuditorExplorerOptions,
  type AuditorView,
  serveAuditorExplorer,
} from './serve.ts';
export {
  AUDIT_CODES,
  type AuditCode,
  type AuditFinding,
  type AuditReport,
  type AuditRound,
  breaksLineage,
  type ClaimedFigure,
  type RoundEvaluation,
} from './types.ts';
export { type AuditDeps, type AuditOptions, auditTask } from './verify.ts';
