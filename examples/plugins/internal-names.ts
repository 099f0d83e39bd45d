/**
 * Example resolver plugin: `<service>.internal` reaches that service in one namespace, through DNS
 * (TUN mode) and through SOCKS/HTTP proxy mode alike.
 *
 * Install: copy this file into your plugin directory (default `~/.config/k8stun/plugins/`).
 * Configure: `--plugin-config internal-names.namespace=staging` (default: `default`).
 */
import type { PluginModule, Target } from "../../mod.ts";

/** Names this plugin answers: `<service>.internal`, with an optional trailing dot. */
const INTERNAL_NAME = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.internal\.?$/i;

export const plugin: PluginModule = {
  name: "internal-names",
  version: "1.0.0",
  apiVersion: 1,
  kinds: ["resolver"],
  setup(ctx) {
    const namespace = ctx.config.namespace ?? "default";
    ctx.log.info("resolving *.internal to services in namespace {namespace}", { namespace });
    return {
      resolvers: [{
        name: "internal-names",
        resolveName(name: string): Target | null {
          const match = INTERNAL_NAME.exec(name);
          if (!match) return null;
          const service = match[1].toLowerCase();
          if (!ctx.cluster.hasService(namespace, service)) return null;
          return { kind: "service", namespace, name: service };
        },
      }],
    };
  },
};
