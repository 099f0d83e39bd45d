/**
 * The dials a plugin's dialers are handling right now. `ctx.dialNext` continues one of them and
 * nothing else: a wrapper dialer passes on the connection it was asked for; it never chooses where
 * the next dialer (the port-forward, holding the user's cluster credentials) connects.
 */
import { type Dialer, DialError, type DialOptions, type DialTarget } from "../../mod.ts";

/** A dial a plugin is handling: the target k8stun asked for and the options it gave. */
export interface WrappedDial {
  target: DialTarget;
  options: DialOptions;
}

/** The dials in progress in one plugin's dialers. */
export class DialsInProgress {
  readonly #active = new Set<WrappedDial>();

  constructor(readonly plugin: string) {}

  /** `dialer`, with each dial registered while it runs. */
  track(dialer: Dialer): Dialer {
    return {
      name: dialer.name,
      accepts: (target) => dialer.accepts(target),
      dial: async (target, options) => {
        const dial = { target, options };
        this.#active.add(dial);
        try {
          return await dialer.dial(target, options);
        } finally {
          this.#active.delete(dial);
        }
      },
      close: dialer.close && (() => dialer.close!()),
    };
  }

  /**
   * The dial in progress that a `ctx.dialNext(requested)` continues. Throws a `DialError`
   * ("forbidden") naming both targets when the plugin asks for anything else.
   */
  continuing(requested: DialTarget): WrappedDial {
    // `requested` comes from plugin code (over a Worker message when isolated): any value.
    const valid = typeof requested === "object" && requested !== null;
    for (const dial of this.#active) if (valid && sameTarget(dial.target, requested)) return dial;
    const asked = describeTarget(requested);
    const active = [...this.#active].map((d) => describeTarget(d.target));
    throw new DialError(
      "forbidden",
      active.length === 0
        ? `plugin ${this.plugin}: ctx.dialNext(${asked}) refused: no dial is in progress — ` +
          "call ctx.dialNext from a dialer's dial(), with the target dial() received"
        : `plugin ${this.plugin}: ctx.dialNext(${asked}) refused: a dialer may only pass on ` +
          `the connection it was asked for (${active.slice(0, 3).join(", ")}${
            active.length > 3 ? ", …" : ""
          }), not choose another target`,
    );
  }
}

/** Whether two dial targets name the same endpoint (a pod's `ip`, when both give one). */
export function sameTarget(a: DialTarget, b: DialTarget): boolean {
  if (a.kind === "host" || b.kind === "host") {
    return a.kind === b.kind && a.port === b.port &&
      (a as { host: string }).host === (b as { host: string }).host;
  }
  return a.namespace === b.namespace && a.name === b.name && a.port === b.port &&
    (a.ip === undefined || b.ip === undefined || a.ip === b.ip);
}

/** `pod ns/name:port` or `host:port`, for messages. */
export function describeTarget(target: DialTarget): string {
  const t = (target ?? {}) as Partial<Record<string, unknown>>;
  return t.kind === "pod"
    ? `pod ${String(t.namespace)}/${String(t.name)}:${String(t.port)}`
    : `${String(t.host)}:${String(t.port)}`;
}
