import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server';
import { requireCommand } from './system-tools';
import { waitFor } from './wait-for';

/** The project's nginx configuration, as docker-compose.yml's `scale` profile mounts it. */
export const PROJECT_NGINX_CONF = join(__dirname, '..', '..', 'docker', 'nginx.conf');

/** One line of the access log the test nginx writes. */
export interface AccessLine {
  status: number;
  /** What each upstream try answered, e.g. `502, 200`, or `-` when nothing was asked (a cache hit). */
  upstreamStatus: string;
  method: string;
  uri: string;
  /** HIT, MISS, EXPIRED, … or `-` when the cache was not involved. */
  cacheStatus: string;
  /** The upstreams tried, in order. */
  upstreamAddr: string;
  /** When the answer was logged (seconds since the epoch, with milliseconds). */
  at: string;
}

/**
 * Makes the project's conf.d file (written for the compose network) run on this machine: its
 * upstream servers become the given local ports, in order, keeping their parameters; it listens
 * on `listenPort`; its cache path goes to the temp dir. Wrapped in the main context the nginx
 * image would provide, with every path nginx writes (pid, logs, temp files) in `dir`.
 */
export function renderNginxConf(
  conf: string,
  options: { upstreams: number[]; listenPort: number; dir: string },
): string {
  let next = 0;
  const body = conf
    .replace(/^(\s*)server\s+[\w.-]+:\d+([^;]*);/gm, (_line, indent: string, params: string) => {
      const port = options.upstreams[next++];
      if (port === undefined) throw new Error('docker/nginx.conf has more upstream servers');
      return `${indent}server 127.0.0.1:${port}${params};`;
    })
    .replace(/^(\s*)listen\s+80;/m, `$1listen 127.0.0.1:${options.listenPort};`)
    .replace(/proxy_cache_path\s+\S+/g, `proxy_cache_path ${join(options.dir, 'cache')}`);
  if (next !== options.upstreams.length) {
    throw new Error(
      `docker/nginx.conf has ${next} upstream servers, the test started ${options.upstreams.length}`,
    );
  }
  const dir = options.dir;
  // As root, nginx would run its workers as nobody, who may not write the temp dir.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  return `${user}
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  log_format polling_test '$status|$upstream_status|$request_method|$request_uri|$upstream_cache_status|$upstream_addr|$msec';
  access_log ${dir}/access.log polling_test;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${body}
}
`;
}

/** Debian's nginx run as the current user with the project's configuration, on a free port. */
export class NginxProcess {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(upstreams: number[], conf = PROJECT_NGINX_CONF): Promise<NginxProcess> {
    requireCommand('nginx');
    const dir = mkdtempSync(join(tmpdir(), 'polling-nginx-'));
    const nginx = new NginxProcess(await freePort(), dir);
    const file = join(dir, 'nginx.conf');
    writeFileSync(
      file,
      renderNginxConf(readFileSync(conf, 'utf8'), { upstreams, listenPort: nginx.port, dir }),
    );
    const child = spawn('nginx', ['-c', file, '-g', 'daemon off;'], { stdio: 'ignore' });
    nginx.child = child;
    try {
      await waitFor(() => nginx.accepts(), {
        timeoutMs: 10_000,
        intervalMs: 50,
        message: `nginx did not listen on ${nginx.port}: ${nginx.errorLog()}`,
      });
    } catch (error) {
      await nginx.stop();
      throw error;
    }
    return nginx;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Every request nginx answered so far. */
  accessLog(): AccessLine[] {
    let text = '';
    try {
      text = readFileSync(join(this.dir, 'access.log'), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [status, upstreamStatus, method, uri, cacheStatus, upstreamAddr, at] =
          line.split('|');
        return {
          status: Number(status),
          upstreamStatus,
          method,
          uri,
          cacheStatus,
          upstreamAddr,
          at,
        };
      });
  }

  errorLog(): string {
    try {
      return readFileSync(join(this.dir, 'error.log'), 'utf8').slice(-20000);
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGQUIT'); // graceful: the master waits for its workers
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accepts(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  }
}
