/**
 * Running a long-lived command in the foreground: the first SIGINT/SIGTERM shuts down in order
 * (bounded, so a stuck step cannot hang the exit, D17); a second one forces the exit at once.
 */

/** Waits for a stop signal, then runs `stop` with a time limit. */
export async function runUntilSignalled(stop: () => Promise<void>, limitMs = 5000): Promise<void> {
  let signalled = 0;
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      signalled++;
      if (signalled > 1) {
        console.error("k8stun: forced exit");
        Deno.exit(130);
      }
      resolve();
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  });
  console.error("k8stun: stopping (press Ctrl-C again to force)");
  const exitCode = await Promise.race([
    stop().then(() => 0, (error) => {
      console.error(`k8stun: shutdown failed: ${error instanceof Error ? error.message : error}`);
      return 1;
    }),
    new Promise<number>((resolve) =>
      setTimeout(() => {
        console.error(`k8stun: shutdown took longer than ${limitMs} ms; exiting anyway`);
        resolve(1);
      }, limitMs)
    ),
  ]);
  // Everything k8stun changed is undone at this point; library timers and keep-alive sockets
  // must not hold the process open.
  Deno.exit(exitCode);
}
