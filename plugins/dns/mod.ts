/**
 * The built-in DNS modes as one plugin: `forward`, `disabled`, and `tun_route` (which answers DNS
 * arriving in the TUN and, until upstream queries can leave bound to the original interface,
 * points the system resolver at k8stun's DNS server the way `forward` does).
 */
import type { DnsMode, PluginModule } from "../../mod.ts";
import { disabledMode, forwardMode } from "./forward.ts";

/** `tun_route`, delegating the system change to `forward`. */
export function tunRouteMode(): DnsMode {
  const forward = forwardMode();
  return {
    name: "tun_route",
    apply: (ctx) => forward.apply(ctx),
    revert: (ctx) => forward.revert(ctx),
  };
}

/** The DNS modes plugin. */
export const dnsModesPlugin: PluginModule = {
  name: "dns-modes",
  version: "builtin",
  apiVersion: 1,
  kinds: ["dns-mode"],
  setup: () => ({ dnsModes: [tunRouteMode(), forwardMode(), disabledMode] }),
};
