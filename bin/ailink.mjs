#!/usr/bin/env node
// The CLI: its TypeScript sources, run from a cached bundle (see src/shared/bundle.mjs for why and how).
import { importBundled } from '../src/shared/bundle.mjs';

await importBundled(new URL('../src/cli/main.ts', import.meta.url).href);
