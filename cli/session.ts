/**
 * Running a long-lived command in the foreground: the first SIGINT/SIGTERM shuts down in order
 * (bounded, so a stuck step cannot hang the exit); a later one forces the exit at once, but
 * never before the synchronous undo hooks ran (the journaled DNS changes: a forced exit skips
 * waiting for connections, never the undo). Signals within a second of the first count as the
 * same one: `deno task` forwards the terminal's Ctrl-C to a child that also got it itself.
 * Signals are trapped before the command changes anything: a Ctrl-C (or a supervisor's SIGTERM)
 * that arrives while k8stun is still starting is remembered and handled as soon as it is up,
 * instead of killing the process with DNS already redirected.
 *
 * An error nothing caught (an exception, a rejected promise nobody awaited) would otherwise end
 * the process at once, leaving DNS pointed at a k8stun that is gone. It is reported as an internal
 * error, the synchronous undo hooks run, and the process exits with {@link INTERNAL_ERROR_EXIT}.
 */

/** Stop signals, trapped from the moment this is created. */
export interface StopSignals {
  /** Fires at the first signal: long start-up steps give up and undo what they did. */
  aborted: AbortSignal;
  /**
   * Registers a synchronous undo that a forced exit runs before the process ends (the normal
   * shutdown undoes the same changes in order). Returns the unregister function.
   */
  onForcedExit(undo: () => void): () => void;
  /** Waits for the first signal (it may have come already), runs `stop` within `limitMs`, exits. */
  runUntilStopped(stop: () => Promise<void>, limitMs?: number): Promise<void>;
}

/**
 * Ctrl-C, a supervisor's stop, and the terminal closing (SIGHUP: a closed tab or SSH session would
 * otherwise end the process on the spot, with DNS still pointed at it). A SIGHUP ignored when
 * k8stun started (`nohup`, `trap '' HUP`) stays ignored: the caller asked it to outlive the
 * terminal. It must be listened to either way: Deno's first signal listener resets an ignored
 * SIGHUP to its default, which ends the process.
 */
const STOP_SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Whether this process started with SIGHUP ignored (Linux: bit 0 of `SigIgn` in
 * /proc/self/status, one bit per signal from 1). Elsewhere it cannot be read without FFI: false.
 */
function hangupIgnored(): boolean {
  try {
    const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"))?.[1];
    return mask !== undefined && (parseInt(mask.slice(-1), 16) & 1) === 1;
  } catch {
    return false;
  }
}
/** Signals closer than this to the first one are the same Ctrl-C delivered twice. */
const SAME_SIGNAL_MS = 1000;
/** The exit status after an uncaught error (EX_SOFTWARE, sysexits.h). */
export const INTERNAL_ERROR_EXIT = 70;

/** How {@link trapStopSignals} treats the terminal. */
export interface TrapOptions {
  /**
   * Ctrl-C's sibling Ctrl-Z (SIGTSTP) is refused with a word: a stopped k8stun answers no DNS, so
   * the whole machine's name lookups would hang until it is resumed. For commands that point the
   * system's DNS at k8stun (`run`, `demo`).
   */
  refuseSuspend?: boolean;
  now?: () => number;
}

/** Installs the stop signals' handlers now. */
export function trapStopSignals(options: TrapOptions = {}): StopSignals {
  const now = options.now ?? performance.now.bind(performance);
  let firstAt: number | undefined;
  let requested!: () => void;
  const stopRequested = new Promise<void>((resolve) => requested = resolve);
  const abort = new AbortController();
  const undoHooks = new Set<() => void>();
  const undoAndExit = (code: number): never => {
    for (const undo of undoHooks) {
      try {
        undo();
      } catch (error) {
        console.error(`k8stun: undo failed: ${error instanceof Error ? error.message : error}`);
      }
    }
    Deno.exit(code);
  };
  const onSignal = () => {
    if (firstAt !== undefined) {
      if (now() - firstAt < SAME_SIGNAL_MS) return;
      console.error("k8stun: forced exit; undoing system changes first");
      undoAndExit(130);
    }
    firstAt = now();
    requested();
    abort.abort(new StoppedDuringStartup());
  };
  const keepOnHangup = hangupIgnored(); // before any listener resets it
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, onSignal);
  Deno.addSignalListener("SIGHUP", keepOnHangup ? () => {} : onSignal);
  if (options.refuseSuspend) {
    Deno.addSignalListener("SIGTSTP", () => {
      console.error(
        "k8stun: not suspending (Ctrl-Z): while stopped it would answer no DNS for this " +
          "machine; Ctrl-C stops it and restores DNS",
      );
    });
  }
  const onUncaught = (event: ErrorEvent | PromiseRejectionEvent) => {
    event.preventDefault(); // the exit is ours, after the undo
    const error = event instanceof ErrorEvent ? event.error : event.reason;
    console.error(
      `k8stun: internal error: ${
        error instanceof Error ? error.stack ?? error.message : String(error)
      }\nk8stun: undoing system changes and exiting; please report this`,
    );
    undoAndExit(INTERNAL_ERROR_EXIT);
  };
  globalThis.addEventListener("error", onUncaught);
  globalThis.addEventListener("unhandledrejection", onUncaught);
  return {
    aborted: abort.signal,
    onForcedExit(undo) {
      undoHooks.add(undo);
      return () => undoHooks.delete(undo);
    },
    async runUntilStopped(stop, limitMs = 5000) {
      await stopRequested;
      console.error("k8stun: stopping (press Ctrl-C again to force)");
      const exitCode = await Promise.race([
        stop().then(() => 0, (error) => {
          console.error(
            `k8stun: shutdown failed: ${error instanceof Error ? error.message : error}`,
          );
          return 1;
        }),
        new Promise<number>((resolve) =>
          setTimeout(() => {
            console.error(`k8stun: shutdown took longer than ${limitMs} ms; exiting anyway`);
            resolve(1);
          }, limitMs)
        ),
      ]);
      // Everything k8stun changed is undone at this point; library timers and keep-alive
      // sockets must not hold the process open.
      Deno.exit(exitCode);
    },
  };
}

/** Start-up gave up because of a stop signal (everything it did was undone). */
export class StoppedDuringStartup extends Error {
  constructor() {
    super("stopped during start-up");
    this.name = "StoppedDuringStartup";
  }
}

/** For commands that change nothing before they wait: trap now, then wait. */
export function runUntilSignalled(stop: () => Promise<void>, limitMs = 5000): Promise<void> {
  return trapStopSignals().runUntilStopped(stop, limitMs);
}
