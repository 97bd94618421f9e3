#!/usr/bin/env node
// The CLI: its TypeScript sources, run from a cached bundle (see src/shared/bundle.mjs for why and how).
import { importBundled } from '../src/shared/bundle.mjs';

// The bundle carries its own copy of @polkadot/*, and chopsticks (left outside it: `ailink dev`, `ailink chain`) loads
// node_modules' copy of the same versions; each copy registers itself, and @polkadot/util then prints 40 lines of
// "has multiple versions" on every start. This flag quiets it for equal versions only: a real mismatch still warns.
process.env.POLKADOTJS_DISABLE_ESM_CJS_WARNING ??= '1';

await importBundled(new URL('../src/cli/main.ts', import.meta.url).href);
