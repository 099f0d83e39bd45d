/** Runs the real launcher, `bin/k8stun`, the way users start k8stun from a checkout. */

/** Absolute path of `bin/k8stun`. */
export const LAUNCHER = new URL("../../bin/k8stun", import.meta.url).pathname;

/** What one run of the launcher printed. */
export interface LauncherResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bin/k8stun ARGS` to completion. */
export async function k8stun(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<LauncherResult> {
  const out = await new Deno.Command(LAUNCHER, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

let warmed: Promise<void> | undefined;

/**
 * Fills the launcher's shared module cache (`.tools/deno-dir`) once, here on the host: its first
 * run downloads modules, which a lab namespace (no network) cannot. Tests that run `bin/k8stun`
 * inside a lab call this first, as a user's first run is online too.
 */
export function warmLauncher(): Promise<void> {
  warmed ??= (async () => {
    const out = await k8stun(["--version"]);
    if (out.code !== 0) throw new Error(`bin/k8stun --version failed: ${out.stderr}`);
  })();
  return warmed;
}
