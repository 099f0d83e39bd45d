/**
 * Keeps Node's DEP0040 warning ("The `punycode` module is deprecated") off k8stun's stderr.
 *
 * `@kubernetes/client-node` depends on `node-fetch@2`, whose `whatwg-url@5` requires
 * `tr46@0.0.3`, which does `require("punycode")`: the built-in module Node deprecated in v21.
 * Every command loads that chain, so every command printed the warning, in text and JSON log
 * formats alike. No release of `node-fetch@2` drops it, and the module works as before; only this
 * one warning is dropped, every other warning still reaches stderr.
 *
 * Import this module first in an entry point: ES modules evaluate in import order, and the warning
 * is emitted while `tr46` is evaluated.
 */
import process from "node:process";

/** The code Node gives the `punycode` deprecation. */
const PUNYCODE_DEPRECATION = "DEP0040";

function codeOf(rest: unknown[]): unknown {
  // emitWarning(warning, type, code) or emitWarning(warning, { type, code })
  const [first, second] = rest;
  if (typeof first === "object" && first !== null) return (first as { code?: unknown }).code;
  return second;
}

const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (codeOf(rest) === PUNYCODE_DEPRECATION) return;
  (emitWarning as (warning: string | Error, ...rest: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
