/**
 * Contract between the simulated API server (which authenticates, authorises and upgrades a
 * `pods/{name}/portforward` request) and the port-forward protocol engines that then speak
 * v4 channels or SPDY/3.1 over the upgraded connection. Engines see bytes, not sockets, so the
 * same SPDY engine serves both the WebSocket tunnel (KEP-4006) and the direct `Upgrade: SPDY/3.1`.
 */

/** An upgraded connection as a byte pipe. For the tunnel, one binary message = one `onData`. */
export interface ByteTransport {
  /** Sends bytes to the client (for the tunnel: one binary WebSocket message). */
  write(bytes: Uint8Array): void;
  /** Registers the receiver of client bytes. */
  onData(listener: (bytes: Uint8Array) => void): void;
  /** Registers a listener for the transport closing (client close, error, or `close()`). */
  onClose(listener: () => void): void;
  /** Closes the transport (for the tunnel: WebSocket Close 1000). */
  close(): void;
  /** Bytes written and not yet handed to the kernel. */
  bufferedAmount(): number;
  /** Stops (and restarts) `onData`: backpressure towards the client, as a blocked read would be. */
  pause(): void;
  resume(): void;
}

/** The kubelet side of one port-forward request: which pod, and how to reach its ports. */
export interface PortForwardContext {
  namespace: string;
  pod: string;
  uid: string;
  /**
   * Connects to the pod's container port, applying the fault hooks. Rejects with an Error whose
   * message is the runtime's text, e.g. `dial tcp4 127.0.0.1:7: connect: connection refused`,
   * which engines embed in `error forwarding port P to pod <id>, uid <uid>: <message>`
   * (docs/portforward.md §8).
   */
  dialPodPort(port: number): Promise<Deno.Conn>;
  /** The `stall` fault: this port's streams are never answered (a wedged kubelet). */
  stalls(port: number): boolean;
  /** Called when a stream pair / channel pair starts and ends (for fault hooks and tests). */
  onStream?(event: "open" | "close", port: number): void;
}

/**
 * The kubelet's error text for a forward that failed, to the pod port's dial or mid-connection
 * (docs/portforward.md §8): `error forwarding port P to pod <name>, uid <uid>: <runtime error>`.
 */
export function forwardingError(ctx: PortForwardContext, port: number, error: unknown): Uint8Array {
  const message = error instanceof Error ? error.message : String(error);
  return new TextEncoder().encode(
    `error forwarding port ${port} to pod ${ctx.pod}, uid ${ctx.uid}: ${message}`,
  );
}

/** Whether a pod connection's read failed because the pod reset it (not because we closed it). */
export function podReset(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset;
}
