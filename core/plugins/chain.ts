/** The chain of dialers behind `ctx.dialNext`. */
import {
  type Dialer,
  DialError,
  type DialOptions,
  type DialTarget,
  type Duplex,
} from "../../mod.ts";
import type { LoadedPlugin } from "./types.ts";

/**
 * The dialers in effective order, filled in once every plugin is loaded; `ctx.dialNext` of a
 * plugin dials with the ones after that plugin's own.
 */
export class DialerChain {
  #entries: { plugin: string; dialer: Dialer }[] = [];

  /** Sets the chain from loaded plugins (in effective order). */
  set(plugins: LoadedPlugin[]): void {
    this.#entries = plugins.flatMap((p) =>
      (p.parts.dialers ?? []).map((dialer) => ({ plugin: p.name, dialer }))
    );
  }

  /** Dials `target` with the first dialer after `plugin`'s that accepts it. */
  async dialAfter(plugin: string, target: DialTarget, options: DialOptions): Promise<Duplex> {
    const last = this.#entries.findLastIndex((e) => e.plugin === plugin);
    for (const { dialer } of this.#entries.slice(last + 1)) {
      if (await dialer.accepts(target)) return dialer.dial(target, options);
    }
    throw new DialError("unreachable", `no dialer after plugin ${plugin} accepts the target`);
  }
}
