/** The built-in DNS modes as one plugin: `tun_route` (default), `forward` and `disabled`. */
import type { PluginModule } from "../../mod.ts";
import { disabledMode, forwardMode } from "./forward.ts";
import { tunRouteMode } from "./tun_route.ts";

/** The DNS modes plugin. */
export const dnsModesPlugin: PluginModule = {
  name: "dns-modes",
  version: "builtin",
  apiVersion: 1,
  kinds: ["dns-mode"],
  setup: () => ({ dnsModes: [tunRouteMode(), forwardMode(), disabledMode] }),
};
