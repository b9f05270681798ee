// Five projects, run in two commands (package.json):
//   npm test              unit (*.spec.ts: src/ beside the code, and test/) + e2e (test/*.e2e-spec.ts)
//                         + e2e-fastify (the transport and host-app e2e suites again, on Fastify)
//   npm run test:faults   the slow suites below: injected faults, abuse, scale/soak, containers, browser
//                         + faults-fastify (10,000 aborted polls on Fastify)
// `npx jest --runInBand <paths>` runs any of them; `--selectProjects e2e-fastify <paths>` on Fastify.
const SLOW_SUITES = [
  '/test/faults/', // fault campaign and abuse, across processes
  '/test/docker/', // docker-compose.yml and nginx.conf
  '/test/example/demo-page', // headless Chromium
  '/test/change-capture/prune-backlog', // 1.5M rows
  '/test/change-capture/index-retention', // 100k feeds
  '/test/change-index/redis-change-index-memory', // 100k feeds
  '/test/http-polling/aborted-polls', // 10,000 aborted polls
];

const common = {
  testEnvironment: 'node',
  rootDir: __dirname,
  roots: ['<rootDir>/src', '<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }] },
  // Sources import each other with explicit .js extensions (ES modules for browsers, src/client).
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // The HTTP platform of the apps the suites start (test/support/http-platform.ts).
  setupFiles: ['<rootDir>/test/support/platform.setup.ts'],
};

// The layers that run on both HTTP platforms: transports over real HTTP, host apps, and the
// example app (its demo page's files, the client SDK following its feeds, its answers while the
// database is down).
const PLATFORM_SUITES =
  '/test/(http-polling/|host-apps/|durable-streams/|client/example-app|example/database-unavailable)';
const fastify = { ...common, globals: { TEST_HTTP_PLATFORM: 'fastify' } };

module.exports = {
  testTimeout: 60000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testRegex: '\\.spec\\.ts$',
      testPathIgnorePatterns: ['/node_modules/', ...SLOW_SUITES],
    },
    {
      ...common,
      displayName: 'e2e',
      testRegex: '\\.e2e-spec\\.ts$',
      testPathIgnorePatterns: ['/node_modules/', ...SLOW_SUITES],
    },
    {
      ...common,
      displayName: 'faults',
      testRegex: SLOW_SUITES.map((s) => `${s}.*\\.(spec|e2e-spec)\\.ts$`),
    },
    {
      ...fastify,
      displayName: 'e2e-fastify',
      testRegex: `${PLATFORM_SUITES}.*\\.e2e-spec\\.ts$`,
      // Not doubled: the protocol walk through the example (39 s; its routes are covered above)
      // and a buffer-memory reading that depends on the GC, not on the platform.
      testPathIgnorePatterns: [
        '/node_modules/',
        ...SLOW_SUITES,
        '/test/durable-streams/(example-stream-protocol|stalled-sse-reader)',
      ],
    },
    {
      ...fastify,
      displayName: 'faults-fastify',
      testRegex: '/test/http-polling/aborted-polls\\.e2e-spec\\.ts$',
    },
  ],
};
