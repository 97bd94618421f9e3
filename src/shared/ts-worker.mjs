// Boots a worker thread whose code is TypeScript: the project runs its sources through tsx (no build step), and a
// worker thread does not inherit the parent's loader, so it loads its entry through tsx's scoped import.
import { workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

await tsImport(workerData.entry, import.meta.url);
