/**
 * Each jest project names the HTTP platform its apps run on (`globals.TEST_HTTP_PLATFORM` in
 * jest.config.js); as an environment variable, processes the tests start (the fixture app, the
 * example) run on it too.
 */
const platform = (globalThis as { TEST_HTTP_PLATFORM?: string }).TEST_HTTP_PLATFORM;
process.env.TEST_HTTP_PLATFORM = platform ?? 'express';
