/** One scrape of a Prometheus text exposition: series → value. */
export interface Scrape {
  /** Sum of the series of `name` whose labels include `labels` (0 when there is none). */
  value(name: string, labels?: Record<string, string>): number;
  /** Whether any series of `name` exists. */
  has(name: string): boolean;
  text: string;
}

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): Scrape {
  const series: Series[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key] = value;
    series.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return {
    text,
    has: (name) => series.some((s) => s.name === name),
    value: (name, labels = {}) =>
      series
        .filter(
          (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
        )
        .reduce((sum, s) => sum + s.value, 0),
  };
}

/** GET the metrics route and parse it; fails on anything but a 200 in the text format. */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text}`);
  if (!/^text\/plain/.test(res.headers.get('content-type') ?? '')) {
    throw new Error(`GET ${url}: content-type ${res.headers.get('content-type')}`);
  }
  return parsePrometheusText(text);
}
