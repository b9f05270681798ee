// Three projects, run in two commands (package.json):
//   npm test              unit (*.spec.ts: src/ beside the code, and test/) + e2e (test/*.e2e-spec.ts)
//   npm run test:faults   the slow suites below: injected faults, abuse, scale/soak, containers, browser
// `npx jest --runInBand <paths>` runs any of them.
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
};

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
  ],
};
