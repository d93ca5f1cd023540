import { defineConfig } from 'vitest/config';

// Interop suite: real Mosquitto, mosquitto_pub/sub, python3 paho, Perl's Authen::SCRAM (Debian packages, see .ci/run).
export default defineConfig({
  test: {
    include: ['test/interop/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
