/**
 * Loads an optional peer dependency (prom-client, @nestjs/swagger) synchronously, only when a
 * feature that needs it is used, so `import 'nestjs-polling'` works without it. Null when it is not
 * installed; any other load error is thrown.
 */
export function loadOptionalPeer<T>(name: string): T | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes(name)) return null;
    throw error;
  }
}
