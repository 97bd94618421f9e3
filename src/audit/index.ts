/**
 * Audit: a task's lineage checked against the chain — manifests, parent links, models, commitments, admissions,
 * settings, privacy budget and the standing of the miners holding it — without trusting the coordinator.
 */
export { type ClaimsInput, evaluateClaims, preprocessingOf, withEvaluation } from './claims.ts';
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
  AUDIT_CODES,
  type AuditCode,
  type AuditFinding,
  type AuditReport,
  type AuditRound,
  type ClaimedFigure,
  type RoundEvaluation,
} from './types.ts';
export { type AuditDeps, type AuditOptions, auditTask } from './verify.ts';
