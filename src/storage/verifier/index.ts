/** verifier/: the verifier's service (tag, certify, verify). */

export {
  podr2KeyId,
  startVerifierService,
  type VerifierServiceDeps,
  type VerifierServiceOptions,
} from './verifier-service.ts';
