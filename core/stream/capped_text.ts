/**
 * The text of a byte stream another party writes (a credential plugin's output, an identity
 * provider's answer), read only up to a limit: past it, reading stops and the stream is cancelled,
 * instead of holding whatever the other side keeps sending.
 */

/** `stream`'s text (UTF-8), or undefined once it runs past `maxBytes` (the stream is cancelled). */
export async function readTextUpTo(
  stream: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<string | undefined> {
  if (!stream) return "";
  const decoder = new TextDecoder();
  let text = "";
  let length = 0;
  for await (const chunk of stream) {
    length += chunk.length;
    if (length > maxBytes) return undefined; // leaving the loop cancels the stream
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}
