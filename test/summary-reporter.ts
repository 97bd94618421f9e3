import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `N passed, N failed, N skipped`, after vitest's own summary: the line CI reads.
 * A module that failed without a failed test of its own (it failed to load, or a `beforeAll`/`afterAll` hook threw,
 * which leaves its tests skipped) counts as one failed test, so that a broken file can never look green; a module
 * whose failure is already counted through its failed tests is not counted again.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let failedTests = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedTests++;
        else skipped++;
      }
      failed += failedTests;
      if (failedTests === 0 && moduleFailed(mod)) failed++;
    }
    failed += unhandledErrors.length;
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}

/** Failed state, or errors outside any test: collection errors and hook errors, on the module or on a suite. */
function moduleFailed(mod: TestModule): boolean {
  if (mod.state() === 'failed' || mod.errors().length > 0) return true;
  for (const suite of mod.children.allSuites()) {
    if (suite.state() === 'failed' || suite.errors().length > 0) return true;
  }
  return false;
}
