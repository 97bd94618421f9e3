// Boots a worker thread whose code is TypeScript: a worker thread does not inherit the parent's loader, so it loads
// its entry itself, from the same cached bundle the CLI uses (src/shared/bundle.mjs), or through tsx.
import { workerData } from 'node:worker_threads';
import { importBundled } from './bundle.mjs';

await importBundled(workerData.entry);
