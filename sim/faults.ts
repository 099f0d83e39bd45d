/**
 * Fault hooks of the simulated cluster: what tests switch on to see k8stun cope with a bad day.
 */

/** Port-forward misbehaviour for a pod port. */
export type PortForwardFault =
  | { kind: "refuse" } // the pod port refuses (kubelet error text on the error channel)
  | { kind: "reset"; afterBytes: number } // the pod connection resets after N bytes
  | { kind: "stall" }; // the kubelet never answers: no SYN_REPLY (SPDY), no port prefixes (v4)

/** Switchable faults. */
export class SimFaults {
  /** Next requests (any path containing `pathIncludes`) answer with this status. */
  readonly #failures: { pathIncludes: string; status: number; remaining: number }[] = [];
  readonly #portForward = new Map<string, PortForwardFault>();
  /** Delay added to every response, in ms. */
  delayMs = 0;
  /** Port-forward upgrades are never answered (an API server or proxy that hangs). */
  stallUpgrades = false;

  /** The next `times` requests whose path contains `pathIncludes` fail with `status`. */
  failRequests(pathIncludes: string, status: 401 | 403 | 404 | 500, times = 1): void {
    this.#failures.push({ pathIncludes, status, remaining: times });
  }

  /** Consumes a matching failure, if any. */
  takeFailure(path: string): number | undefined {
    const failure = this.#failures.find((f) => f.remaining > 0 && path.includes(f.pathIncludes));
    if (!failure) return undefined;
    failure.remaining--;
    return failure.status;
  }

  /** Sets (or with `undefined`, clears) a port-forward fault for a pod port. */
  portForward(
    namespace: string,
    pod: string,
    port: number,
    fault: PortForwardFault | undefined,
  ): void {
    const k = `${namespace}/${pod}:${port}`;
    if (fault) this.#portForward.set(k, fault);
    else this.#portForward.delete(k);
  }

  /** The fault for a pod port. */
  portForwardFault(namespace: string, pod: string, port: number): PortForwardFault | undefined {
    return this.#portForward.get(`${namespace}/${pod}:${port}`);
  }
}
