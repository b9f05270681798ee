import { defineConfig } from 'vitest/config';

/**
 * `npm run test:conformance`: the third-party Durable Streams server conformance suite
 * (@durable-streams/server-conformance-tests), against the reference server and against the
 * built example app, read-side groups only (docs/durable-streams.md says which and why).
 */
// Regular-expression fragments matched against each test's group.
const READ_GROUPS = [
  'Read Operations',
  'Long-Poll Operations',
  'Long-Poll Edge Cases',
  'Offset Validation and Resumability',
  'Caching and ETag',
  'SSE Mode',
  'JSON Mode',
  'HEAD Metadata(?! Edge Cases)', // the edge cases are TTL and expiry metadata
  'Browser Security Headers',
];

/**
 * Selected tests that fail against the reference server 0.3.7 (suite 0.3.6), left out for it: its
 * CORS preflight answer does not list If-None-Match in Access-Control-Allow-Headers, and it sends
 * a catch-up of two appends as two data events under one control event where the suite wants a
 * control event after each. Ours passes the SSE ones; the example app enables no CORS at all (its
 * API is same-origin), so its preflight answer is a 405 and that test is left out for it too.
 */
const CORS_PREFLIGHT = 'should allow If-None-Match in CORS preflight responses';
const LEFT_OUT: Record<string, string[]> = {
  'reference server': [
    CORS_PREFLIGHT,
    'JSON SSE catch-up pairs every data event with a control event',
    'base64 SSE catch-up pairs every data event with a control event',
  ],
  'nestjs-polling': [CORS_PREFLIGHT],
};

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const leftOut = Object.entries(LEFT_OUT).map(
  ([server, tests]) => `(?!.*${server} .*(${tests.map(escape).join('|')}))`,
);

export default defineConfig({
  test: {
    include: ['test/conformance/*.test.ts'],
    // A test's full name is "<server> <group> <test>" (vitest joins them with spaces).
    testNamePattern: new RegExp(
      `^${leftOut.join('')}.*(${Object.keys(LEFT_OUT).join('|')}) (${READ_GROUPS.join('|')}) `,
    ),
    testTimeout: 30_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
