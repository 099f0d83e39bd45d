/**
 * The text of a byte stream another party writes (a credential plugin's output, an identity
 * provider's answer), read only up to a limit: past it, reading stops and the stream is cancelled,
 * instead of holding whatever the other side keeps sending.
 */

/**
 * `stream`'s text (UTF-8), or undefined once it runs past `maxBytes` (the stream is cancelled).
 * When `enough` aborts first, reading stops there (the stream is cancelled) and the text so far
 * is the text.
 */
export async function readTextUpTo(
  stream: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  enough?: AbortSignal,
): Promise<string | undefined> {
  if (!stream) return "";
  const decoder = new TextDecoder();
  let text = "";
  let length = 0;
  const reader = stream.getReader();
  const stop = new Promise<undefined>((resolve) => {
    if (enough?.aborted) resolve(undefined);
    enough?.addEventListener("abort", () => resolve(undefined), { once: true });
  });
  try {
    while (true) {
      const next = await Promise.race([reader.read(), stop]);
      if (next === undefined || next.done) break;
      length += next.value.length;
      if (length > maxBytes) return undefined;
      text += decoder.decode(next.value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return text + decoder.decode();
}
