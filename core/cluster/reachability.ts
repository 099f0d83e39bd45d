/**
 * Whether the API server answers, as the list/watch loops see it. Each loop reports its own
 * failures and successes; the server counts as unreachable while any loop is failing, and each
 * change is announced once (a warning when it goes, one when it is back) instead of once per
 * retry.
 */

/** What `/healthz` and the events say about the cluster. */
export type ClusterState = "syncing" | "synced" | "unreachable";

/** A change of {@link ClusterState}, with the failure that caused it. */
export interface ClusterStateChange {
  state: ClusterState;
  /** The first error seen when the server became unreachable. */
  error?: string;
  /** How long the outage lasted, when the server is back. */
  outageMs?: number;
}

/** Tracks the API server's reachability across the list/watch loops. */
export class Reachability {
  readonly #failing = new Map<string, string>();
  #synced = false;
  #unreachableSince?: number;
  readonly #listeners = new Set<(change: ClusterStateChange) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The current state. */
  get state(): ClusterState {
    if (this.#failing.size > 0 && this.#unreachableSince !== undefined) return "unreachable";
    return this.#synced ? "synced" : "syncing";
  }

  /** The errors of the loops that are failing now, one per loop. */
  errors(): string[] {
    return [...this.#failing.entries()].map(([loop, error]) => `${loop}: ${error}`);
  }

  /** Every resource has been listed once. */
  markSynced(): void {
    const before = this.state;
    this.#synced = true;
    this.#announce(before);
  }

  /** `loop` could not reach the server (a refused connection, a timeout, a 5xx). */
  failed(loop: string, error: string): void {
    const before = this.state;
    this.#failing.set(loop, error);
    this.#unreachableSince ??= this.now();
    this.#announce(before, error);
  }

  /** `loop` got an answer from the server. */
  succeeded(loop: string): void {
    const before = this.state;
    if (!this.#failing.delete(loop)) return;
    const since = this.#unreachableSince;
    if (this.#failing.size === 0) this.#unreachableSince = undefined;
    this.#announce(before, undefined, since);
  }

  /** Calls `listener` on each change of state; returns the unsubscribe function. */
  onChange(listener: (change: ClusterStateChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #announce(before: ClusterState, error?: string, since?: number): void {
    const state = this.state;
    if (state === before) return;
    const change: ClusterStateChange = { state };
    if (state === "unreachable") change.error = error;
    if (before === "unreachable" && since !== undefined) change.outageMs = this.now() - since;
    for (const listener of this.#listeners) listener(change);
  }
}
