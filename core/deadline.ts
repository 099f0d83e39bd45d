/**
 * The one way k8stun puts a time limit on a promise: the work's result, or a rejection with the
 * caller's error once `ms` have passed. The timer is cleared either way, so a finished piece of
 * work leaves nothing behind that keeps the process alive.
 */

/**
 * Resolves with `work` (a promise, or a function whose value or throw is taken as one), or
 * rejects with `timeout()` after `ms` milliseconds, whichever comes first.
 *
 * @example
 * ```ts
 * const list = await deadline(api.listNamespace(), 15_000, () => new Error("no answer in 15 s"));
 * ```
 */
export async function deadline<T>(
  work: Promise<T> | (() => T | Promise<T>),
  ms: number,
  timeout: () => Error,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      typeof work === "function" ? Promise.resolve().then(work) : work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
