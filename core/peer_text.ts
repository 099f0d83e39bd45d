/**
 * Text another party wrote (an API server's Status message, a proxy's reply line, a credential
 * plugin's stderr), made fit for one of our error messages or log lines: one line, no control
 * characters or terminal escape sequences (colour codes, cursor moves, a forged second log line),
 * and no longer than `maxChars`.
 */

/** ECMA-48 control sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL/ST`) that terminals act on. */
// deno-lint-ignore no-control-regex
const ESCAPE_SEQUENCES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?/g;
/** Blanks and every other control character (C0, DEL, C1). */
const BLANKS_AND_CONTROLS = /[\s\p{Cc}]+/gu;

/** `text` on one line, escape sequences dropped, controls and blank runs as one space, capped. */
export function oneLine(text: string, maxChars = 500): string {
  const line = text.replace(ESCAPE_SEQUENCES, "").replace(BLANKS_AND_CONTROLS, " ").trim();
  return line.length > maxChars ? `${line.slice(0, maxChars)}…` : line;
}
