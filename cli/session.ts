/**
 * Running a long-lived command in the foreground: the first SIGINT/SIGTERM shuts down in order
 * (bounded, so a stuck step cannot hang the exit, D17); a second one forces the exit at once.
 * Signals are trapped before the command changes anything: a Ctrl-C (or a supervisor's SIGTERM)
 * that arrives while k8stun is still starting is remembered and handled as soon as it is up,
 * instead of killing the process with DNS already redirected.
 */

/** Stop signals, trapped from the moment this is created. */
export interface StopSignals {
  /** Fires at the first signal: long start-up steps give up and undo what they did. */
  aborted: AbortSignal;
  /** Waits for the first signal (it may have come already), runs `stop` within `limitMs`, exits. */
  runUntilStopped(stop: () => Promise<void>, limitMs?: number): Promise<void>;
}

/** Installs the SIGINT/SIGTERM handlers now. */
export function trapStopSignals(): StopSignals {
  let signalled = 0;
  let requested!: () => void;
  const stopRequested = new Promise<void>((resolve) => requested = resolve);
  const abort = new AbortController();
  const onSignal = () => {
    signalled++;
    if (signalled > 1) {
      console.error("k8stun: forced exit");
      Deno.exit(130);
    }
    requested();
    abort.abort(new StoppedDuringStartup());
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  return {
    aborted: abort.signal,
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
