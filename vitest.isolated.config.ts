// Tests that change machine-wide state (kernel.io_uring_disabled) run after
// the main suite, alone, so no other test can see io_uring vanish under it.
import { defineConfig } from 'vitest/config';
import base from './vitest.config';

export default defineConfig({
  test: {
    ...base.test,
    include: ['test/isolated/**/*.test.ts'],
    exclude: [],
    fileParallelism: false,
  },
});
