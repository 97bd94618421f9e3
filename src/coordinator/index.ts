/** coordinator: tasks, rounds and admissions, and the HTTP API in front of them. */
export {
  ADMISSION_BATCH,
  type Admission,
  type AdmissionOutcome,
  type AdmissionQueue,
  createAdmissionQueue,
  MAX_QUEUED_ADMISSIONS,
} from './admissions.ts';
export {
  type Coordinator,
  type CoordinatorDeps,
  type CoordinatorLedger,
  type CoordinatorOptions,
  createCoordinator,
  type JoinRequest,
  type RoundEvent,
  type TaskInput,
  topicOf,
} from './coordinator.ts';
export {
  API_VERSION,
  BODY_LIMIT,
  buildApp,
  type ErrorBody,
  ErrorBodySchema,
  type HttpDeps,
  type HttpErrorCode,
  InfoSchema,
  JoinBodySchema,
  JoinedSchema,
  TaskDetailSchema,
} from './http.ts';
export type { AttemptOutcome, RoundDeps } from './round.ts';
export {
  CREATE_TASK_OP,
  createOwnerGuard,
  MAX_SIGNATURE_TTL_MS,
  SIGNATURE_HEADERS,
  signCoordinatorRequest,
} from './signed-requests.ts';
export { type CoordinatorStore, openCoordinatorStore, type RoundRow, type TaskRow } from './store.ts';
