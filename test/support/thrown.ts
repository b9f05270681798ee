/**
 * The error `run` throws, which must be a `type` (what a caller would catch: a 400 for the HTTP
 * layer, a PollingConfigError at start-up). Fails the test when `run` returns instead.
 */
export function thrownBy<E extends Error>(
  run: () => unknown,
  type: abstract new (...args: never[]) => E,
): E {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error as E;
  }
  throw new Error(
    `expected a ${type.name}, got a result: ${JSON.stringify(result)?.slice(0, 200)}`,
  );
}
