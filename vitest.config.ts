import { defineConfig } from 'vitest/config';

// Tests import workspace packages from source through the custom export condition
// "@loanout/source" (see each package.json "exports"), so no build is needed to test.
export default defineConfig({
  resolve: { conditions: ['@loanout/source'] },
  ssr: { resolve: { conditions: ['@loanout/source'] } },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/**/*.test.ts',
      'test/**/*.test.ts',
      'examples/**/*.test.ts',
      'benches/**/*.test.ts',
      'scripts/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
    /* NetBSD's DIAGNOSTIC for every kernel the tests boot: a loaned page that changes panics */
    env: { LOANOUT_DIAGNOSTIC: '1' },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
