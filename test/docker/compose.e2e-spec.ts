/**
 * Static checks of the container setup: Dockerfile, docker-compose.yml (default and `scale`
 * profiles) and docker/nginx.conf. No Docker engine is needed: `docker-compose config` (v1) or
 * `docker compose config` (v2) only parses and normalises the file. Without either tool the compose
 * checks fail, naming the script that installs Debian's docker-compose; the file checks still run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingSystemTool } from '../support/system-tools';

const ROOT = join(__dirname, '..', '..');
const COMPOSE_FILE = 'docker-compose.yml';
const APP_SERVICES = ['app', 'app-a', 'app-b'];
const SCALE_SERVICES = ['app-a', 'app-b', 'nginx'];

interface Compose {
  cmd: string;
  args: string[];
  label: string;
  /** `--profile` is supported by docker-compose >= 1.28 and by v2. */
  profiles: boolean;
}

function findCompose(): Compose | null {
  const candidates: Array<Omit<Compose, 'profiles'>> = [
    { cmd: 'docker-compose', args: [], label: 'docker-compose' },
    { cmd: 'docker', args: ['compose'], label: 'docker compose' },
  ];
  for (const c of candidates) {
    const r = spawnSync(c.cmd, [...c.args, 'version', '--short'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.status !== 0) continue;
    const m = /(\d+)\.(\d+)/.exec(r.stdout);
    const [major, minor] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    return { ...c, profiles: major >= 2 || (major === 1 && minor >= 28) };
  }
  return null;
}

const compose = findCompose();

function runCompose(...args: string[]) {
  const c = compose!;
  return spawnSync(c.cmd, [...c.args, '-f', COMPOSE_FILE, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    // Keep the checks independent of the caller's shell (e.g. an exported API_KEYS).
    env: { ...process.env, API_KEYS: '', COMPOSE_PROFILES: '' },
  });
}

function read(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8');
}

/**
 * The indented block under `key:` at `indent` spaces in normalised YAML (compose's `config`
 * output), up to the next line at the same or a lower indentation (list items excepted).
 */
function block(yaml: string, key: string, indent: number): string {
  const lines = yaml.split('\n');
  const pad = ' '.repeat(indent);
  const start = lines.findIndex((l) => l === `${pad}${key}:` || l.startsWith(`${pad}${key}: `));
  if (start < 0) return '';
  const out = [lines[start]];
  for (const line of lines.slice(start + 1)) {
    const lineIndent = line.length - line.trimStart().length;
    // docker-compose v1 writes list items at the key's own indentation.
    const ownListItem = lineIndent === indent && line.trimStart().startsWith('- ');
    if (line.trim() !== '' && lineIndent <= indent && !ownListItem) break;
    out.push(line);
  }
  return out.join('\n');
}

const service = (yaml: string, name: string) => block(block(yaml, 'services', 0), name, 2);

/** `KEY: value` in an environment block, with or without quotes (v1 and v2 differ). */
function envValue(serviceBlock: string, key: string): string | undefined {
  const m = new RegExp(`^\\s+${key}: ['"]?([^'"\\n]*)['"]?$`, 'm').exec(
    block(serviceBlock, 'environment', 4),
  );
  return m?.[1];
}

/** Seconds of an nginx time value: 75, 75s, 2m, 1m30s. */
function nginxSeconds(value: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const [, n, unit] of value.matchAll(/(\d+)(ms|s|m|h)?/g))
    total += Number(n) * units[unit ?? 's'];
  return total;
}

const withoutComments = (text: string) => text.replace(/#.*$/gm, '');

describe(`docker-compose.yml (${compose?.label ?? 'compose not installed'})`, () => {
  let scaleConfig = '';

  beforeAll(() => {
    if (!compose)
      throw missingSystemTool('neither `docker-compose` nor `docker compose` is installed');
    const args = compose!.profiles ? ['--profile', 'scale', 'config'] : ['config'];
    const r = runCompose(...args);
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
    scaleConfig = r.stdout;
  });

  it('is valid with the default profile (`config -q` exits 0)', () => {
    const r = runCompose('config', '-q');
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  });

  it('is valid with the scale profile (`--profile scale config -q` exits 0)', () => {
    if (!compose!.profiles) {
      console.warn(`compose.e2e-spec: ${compose!.label} predates --profile; checked without it`);
      return;
    }
    const r = runCompose('--profile', 'scale', 'config', '-q');
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  });

  it('`docker compose up` (default profile) runs postgres, redis and app only', () => {
    const r = runCompose('config', '--services');
    expect(r.status).toBe(0);
    const services = r.stdout.split('\n').filter(Boolean);
    expect(services).toEqual(expect.arrayContaining(['postgres', 'redis', 'app']));
    // v1 lists every service; v2 only the active ones. Either way only the scale services
    // may carry a profile, and they must.
    for (const name of ['postgres', 'redis', 'app']) {
      expect(block(service(scaleConfig, name), 'profiles', 4)).toBe('');
    }
    for (const name of SCALE_SERVICES) {
      expect(block(service(scaleConfig, name), 'profiles', 4)).toMatch(/^\s+- ['"]?scale['"]?$/m);
    }
    const all = block(scaleConfig, 'services', 0)
      .split('\n')
      .map((l) => /^ {2}([\w.-]+):$/.exec(l)?.[1])
      .filter((n): n is string => !!n);
    expect(all.sort()).toEqual(['app', 'app-a', 'app-b', 'nginx', 'postgres', 'redis']);
  });

  it('keeps postgres and redis with healthchecks on 127.0.0.1', () => {
    for (const [name, port] of [
      ['postgres', 5432],
      ['redis', 6379],
    ] as const) {
      const s = service(scaleConfig, name);
      expect(block(s, 'healthcheck', 4)).toMatch(/test:/);
      expect(publishedOn(s, port)).toBe(`127.0.0.1:${port}`);
    }
  });

  it('app: built from the Dockerfile, migrates on start, waits for healthy postgres and redis', () => {
    const app = service(scaleConfig, 'app');
    expect(block(app, 'build', 4)).not.toBe('');
    expect(envValue(app, 'DATABASE_URL')).toBe('postgres://postgres@postgres:5432/postgres');
    expect(envValue(app, 'REDIS_URL')).toBe('redis://redis:6379');
    expect(envValue(app, 'MIGRATE_ON_START')).toBe('1');
    expect(envValue(app, 'PORT')).toBe('3000');
    expect(publishedOn(app, 3000)).toBe('127.0.0.1:3000');
    expectHealthyDeps(app, ['postgres', 'redis']);
    expect(block(app, 'healthcheck', 4)).toMatch(/\/health/);
  });

  it('scale: app-a and app-b share the image, wait for `app` (the only migrator), publish nothing', () => {
    for (const name of ['app-a', 'app-b']) {
      const s = service(scaleConfig, name);
      expect(block(s, 'build', 4)).not.toBe('');
      expect(s).toMatch(/^ {4}image: nestjs-polling-example:local$/m);
      expect(envValue(s, 'DATABASE_URL')).toBe('postgres://postgres@postgres:5432/postgres');
      expect(envValue(s, 'REDIS_URL')).toBe('redis://redis:6379');
      expect(envValue(s, 'MIGRATE_ON_START') ?? '').not.toBe('1');
      expectHealthyDeps(s, ['postgres', 'redis', 'app']);
      expect(block(s, 'ports', 4)).toBe('');
      expect(block(s, 'healthcheck', 4)).toMatch(/\/health/);
    }
    expect(service(scaleConfig, 'app')).toMatch(/^ {4}image: nestjs-polling-example:local$/m);
  });

  it('scale: nginx 1.27 on 127.0.0.1:8080 with docker/nginx.conf, after both apps are healthy', () => {
    const nginx = service(scaleConfig, 'nginx');
    expect(nginx).toMatch(/^ {4}image: nginx:1\.27-alpine$/m);
    expect(publishedOn(nginx, 80)).toBe('127.0.0.1:8080');
    expect(block(nginx, 'volumes', 4)).toMatch(/docker\/nginx\.conf/);
    expect(block(nginx, 'volumes', 4)).toMatch(/\/etc\/nginx\/conf\.d\/default\.conf/);
    expectHealthyDeps(nginx, ['app-a', 'app-b']);
  });

  it("nginx's proxy_read_timeout outlasts the apps' POLL_MAX_WAIT_S", () => {
    const conf = withoutComments(read('docker/nginx.conf'));
    const maxWait = Math.max(
      ...APP_SERVICES.map((n) =>
        Number(envValue(service(scaleConfig, n), 'POLL_MAX_WAIT_S') ?? 55),
      ),
    );
    const m = /^\s*proxy_read_timeout\s+(\S+);/m.exec(conf);
    expect(m).not.toBeNull();
    expect(nginxSeconds(m![1])).toBeGreaterThan(maxWait);
    const send = /^\s*proxy_send_timeout\s+(\S+);/m.exec(conf);
    if (send) expect(nginxSeconds(send[1])).toBeGreaterThan(maxWait);
  });

  /** "host_ip:published" of the mapping to container port `target` (v1: short, v2: long form). */
  function publishedOn(serviceBlock: string, target: number): string | undefined {
    const ports = block(serviceBlock, 'ports', 4);
    const short = new RegExp(`- ['"]?([\\d.]+:\\d+):${target}(/tcp)?['"]?$`, 'm').exec(ports);
    if (short) return short[1];
    for (const entry of ports.split(/\n\s+- /)) {
      if (new RegExp(`target: ${target}$`, 'm').test(entry)) {
        const host = /host_ip: ['"]?([\d.]+)/.exec(entry)?.[1];
        const published = /published: ['"]?(\d+)/.exec(entry)?.[1];
        return `${host}:${published}`;
      }
    }
    return undefined;
  }

  function expectHealthyDeps(serviceBlock: string, deps: string[]): void {
    const dependsOn = block(serviceBlock, 'depends_on', 4);
    for (const dep of deps) {
      expect(block(dependsOn, dep, 6)).toMatch(/condition: service_healthy/);
    }
  }
});

describe('docker/nginx.conf (long polling behind a load balancer)', () => {
  const conf = withoutComments(read('docker/nginx.conf'));

  it('balances app-a and app-b with upstream keepalive', () => {
    const upstream = /upstream\s+(\S+)\s*\{([^}]*)\}/.exec(conf);
    expect(upstream).not.toBeNull();
    const [, name, body] = upstream!;
    expect(body).toMatch(/^\s*server\s+app-a:3000\b/m);
    expect(body).toMatch(/^\s*server\s+app-b:3000\b/m);
    expect(body).toMatch(/^\s*keepalive\s+\d+;/m);
    expect(conf).toMatch(new RegExp(`proxy_pass\\s+http://${name};`));
  });

  it('does not buffer and speaks HTTP/1.1 with an empty Connection header', () => {
    expect(conf).toMatch(/^ {4}proxy_buffering\s+off;/m);
    expect(conf).toMatch(/^\s*proxy_http_version\s+1\.1;/m);
    expect(conf).toMatch(/^\s*proxy_set_header\s+Connection\s+"";/m);
    expect(conf).toMatch(/^\s*listen\s+80;/m);
  });

  it('passes the client address on', () => {
    expect(conf).toMatch(/^\s*proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;/m);
  });

  it('hides a stopping instance: retries reads on another, never marks every instance down', () => {
    const upstream = /upstream\s+\S+\s*\{([^}]*)\}/.exec(conf)![1];
    for (const server of upstream.match(/^\s*server\s.*$/gm) ?? [])
      expect(server).toMatch(/max_fails=0/);
    expect(conf).toMatch(/^\s*proxy_next_upstream\s+error timeout http_502 http_503 http_504;/m);
    // Only the batch poll (a read) is replayed although it is a POST.
    const replayed = conf.match(/^.*non_idempotent.*$/gm) ?? [];
    expect(replayed).toHaveLength(1);
    expect(/location\s*=\s*\/poll\s*\{[^}]*non_idempotent/.test(conf)).toBe(true);
  });

  it('caches public feeds only, keyed by path and query, one request per key at a time', () => {
    expect(conf).toMatch(/^\s*proxy_cache_path\s+\S+\s[^;]*keys_zone=polling_public:/m);
    const publicFeeds = /location\s+\/public\/\s*\{([^}]*)\}/.exec(conf)?.[1] ?? '';
    expect(publicFeeds).toMatch(/^\s*proxy_cache\s+polling_public;/m);
    expect(publicFeeds).toMatch(/^\s*proxy_cache_key\s+\$scheme\$proxy_host\$uri\$is_args\$args;/m);
    expect(publicFeeds).toMatch(/^\s*proxy_cache_lock\s+on;/m);
    expect(publicFeeds).toMatch(/^\s*proxy_buffering\s+on;/m);
    // Nowhere else: the lock would queue identical private polls behind one another.
    expect(conf.match(/^\s*proxy_cache\s/gm)).toHaveLength(1);
    expect(conf).not.toMatch(/proxy_ignore_headers/);
  });

  it('holds requests longer than the default 55 s maximum wait', () => {
    const m = /^\s*proxy_read_timeout\s+(\S+);/m.exec(conf);
    expect(nginxSeconds(m?.[1] ?? '60s')).toBeGreaterThan(55);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const instructions = withoutComments(dockerfile.replace(/\\\n/g, ' '))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const froms = instructions.filter((l) => /^FROM\s/i.test(l));
  const runtime = instructions.slice(instructions.lastIndexOf(froms[froms.length - 1]));

  it('has a builder and a runtime stage on node:20-bookworm-slim', () => {
    expect(froms).toHaveLength(2);
    for (const from of froms) expect(from).toMatch(/^FROM\s+node:20-bookworm-slim\b/);
    expect(froms[0]).toMatch(/\sAS\s+builder$/i);
  });

  it('builds with npm ci and npm run build', () => {
    const builder = instructions.slice(0, instructions.indexOf(froms[1]));
    expect(builder).toContain('RUN npm ci --no-audit --no-fund');
    expect(builder).toContain('RUN npm run build');
  });

  it('runs the compiled example as the unprivileged node user', () => {
    expect(runtime).toContain('USER node');
    expect(runtime.indexOf('USER node')).toBeLessThan(runtime.findIndex((l) => /^CMD\s/.test(l)));
    expect(runtime).toContain('CMD ["node", "dist-example/example/main.js"]');
    expect(runtime).toContain('EXPOSE 3000');
    for (const path of ['node_modules', 'dist-example', 'example/public', 'package.json']) {
      expect(runtime.some((l) => /^COPY\s/.test(l) && l.includes(path))).toBe(true);
    }
  });

  it('has a HEALTHCHECK on GET /health that needs only node', () => {
    const hc = runtime.find((l) => /^HEALTHCHECK\s/.test(l));
    expect(hc).toBeDefined();
    expect(hc).toMatch(/CMD \["node", "-e",/);
    expect(hc).toMatch(/\/health/);
    expect(hc).not.toMatch(/curl|wget/);
  });

  it('.dockerignore keeps local installs and build output out of the context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', 'dist', 'dist-example', '.git']),
    );
    for (const needed of ['package-lock.json', 'src', 'example', 'migrations', 'tsconfig*.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});
