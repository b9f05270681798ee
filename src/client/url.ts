/** The page's address in a browser (relative URLs resolve against it), else undefined. */
function pageAddress(): string | undefined {
  const href = (globalThis as { location?: { href?: unknown } }).location?.href;
  return typeof href === 'string' ? href : undefined;
}

/**
 * `url` as the absolute URL the client requests, resolved against `baseUrl`, else the page. Checked
 * once before the first request: a URL fetch cannot parse fails the same way on every retry, so
 * it is a TypeError at once instead of a backoff loop.
 */
export function resolveUrl(name: string, url: unknown, baseUrl: string | undefined): string {
  if (typeof url !== 'string' || url.length === 0) throw new TypeError(`${name} is required`);
  if (baseUrl !== undefined && !isHttpUrl(baseUrl)) {
    throw new TypeError(
      `baseUrl "${baseUrl}" is not an absolute http(s) URL (e.g. http://localhost:3000)`,
    );
  }
  const base = baseUrl ?? pageAddress();
  try {
    return new URL(url, base).href;
  } catch {
    throw new TypeError(
      base === undefined
        ? `${name} "${url}" is not an absolute URL: pass baseUrl (e.g. http://localhost:3000) ` +
            'outside a browser'
        : `${name} "${url}" is not a valid URL`,
    );
  }
}

/** `localhost:3000` parses too (as scheme `localhost:`), so the scheme is checked. */
function isHttpUrl(url: string): boolean {
  try {
    return /^https?:$/.test(new URL(url).protocol);
  } catch {
    return false;
  }
}
