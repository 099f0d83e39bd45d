/**
 * DNS mode `tun_route` (the default): the system's resolvers stay configured as they are, but DNS
 * to their addresses is diverted into the TUN, where k8stun answers cluster names and forwards
 * every other query to the same resolver through a socket bound to the interface that reached it
 * before (so it does not loop back into the TUN); the rest of their traffic keeps its path.
 * Where that cannot work it says why and uses `forward` instead, never refusing to start: a local
 * stub resolver (systemd-resolved sends a link's queries out of that link, so routing its
 * upstreams would miss them), proxy mode, IPv6 or unroutable resolvers, and a system that can
 * route only an address's whole traffic (macOS; Linux before 4.17) — a resolver is often the
 * router or a domain controller, whose web page, NTP, LDAP or Kerberos must stay reachable.
 */
import type { AppliedDnsMode, DnsMode, DnsModeContext } from "../../mod.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { systemOutgoingInterface } from "../../ffi/linux/route_lookup.ts";
import { Darwin } from "../../ffi/darwin/libsystem.ts";
import { darwinOutgoingInterface } from "../../ffi/darwin/route_lookup.ts";
import { forwardMode } from "./forward.ts";
import { parseResolvConf } from "../../core/dns/upstream.ts";

/** Finds the device that reaches a resolver (before k8stun's routes exist). */
export type InterfaceLookup = (address: number) => string | undefined;

/**
 * The lookup of this OS: /proc/net/route on Linux; on macOS an RTM_GET on a routing socket,
 * asked once per resolver at start-up (ffi/darwin/route_lookup.ts).
 */
export function systemInterfaceLookup(os: typeof Deno.build.os = Deno.build.os): InterfaceLookup {
  if (os !== "darwin") return systemOutgoingInterface;
  return (address) => {
    const darwin = new Darwin();
    try {
      return darwinOutgoingInterface(darwin, address)?.name;
    } finally {
      darwin.close();
    }
  };
}

/**
 * How often the route to each diverted resolver is looked up again (a dock, a cable), and the
 * system's resolvers read again (another network, a VPN).
 */
export const FOLLOW_ROUTES_MS = 3000;

/** The nameservers /etc/resolv.conf lists now (none when it cannot be read). */
export function systemNameservers(): string[] {
  try {
    return parseResolvConf(Deno.readTextFileSync("/etc/resolv.conf"));
  } catch {
    return [];
  }
}

/**
 * Builds the mode; `forward`, `lookup`, the follow interval and the nameservers' reader are
 * replaceable for tests.
 */
export function tunRouteMode(
  forward: DnsMode = forwardMode(),
  lookup: InterfaceLookup = systemInterfaceLookup(),
  followEveryMs = FOLLOW_ROUTES_MS,
  nameservers: () => string[] = systemNameservers,
): DnsMode {
  let fellBack = false;
  let following: ReturnType<typeof setInterval> | undefined;
  return {
    name: "tun_route",
    async apply(ctx: DnsModeContext): Promise<void | AppliedDnsMode> {
      const plan = routePlan(ctx, lookup);
      let reason: string | undefined = typeof plan === "string" ? plan : undefined;
      if (typeof plan !== "string") {
        reason = await divert(ctx, plan);
        if (reason === undefined) {
          following = followNetwork(ctx, plan, lookup, followEveryMs, nameservers);
          return;
        }
      }
      ctx.log.warn("tun_route is not possible here: {reason}; using forward mode instead", {
        reason,
      });
      fellBack = true;
      await forward.apply(ctx);
      return { mode: forward.name, reason: `tun_route is not possible here: ${reason}` };
    },
    async revert(ctx: DnsModeContext) {
      clearInterval(following);
      following = undefined;
      // The routes go away with the TUN; only a fallback changed anything else.
      if (fellBack) await forward.revert(ctx);
    },
  };
}

/**
 * Binds each resolver's upstream to its device and routes the resolvers into the TUN; why not,
 * when the system refused (a route to a resolver that exists already, say).
 */
async function divert(ctx: DnsModeContext, plan: Map<string, string>): Promise<string | undefined> {
  // Bound first: once DNS to a resolver enters the TUN, an unbound upstream query would too.
  for (const [server, device] of plan) ctx.bindUpstream!(server, device);
  try {
    await ctx.routeToTun!([...plan.keys()]);
  } catch (error) {
    // The fallback reaches the resolvers as the routing table says, not through a device
    // chosen for a diversion that did not happen (the network may change meanwhile).
    for (const server of plan.keys()) ctx.unbindUpstream?.(server);
    return `the resolvers cannot be routed into the TUN (${(error as Error).message})`;
  }
  ctx.log.info(
    "resolvers {servers} now reach k8stun through {tun}; other names go out via {devices}",
    {
      servers: [...plan.keys()].join(", "),
      tun: ctx.tunName ?? "the TUN",
      devices: [...new Set(plan.values())].join(", "),
    },
  );
}

/**
 * Keeps tun_route's diversion in step with the network while k8stun runs:
 *
 * - each resolver's upstream queries stay on the interface that reaches the resolver now: a
 *   laptop docked to the same router (Wi-Fi, then Ethernet) reaches the same address through
 *   another interface, and a socket still bound to the old one would fail every forwarded name;
 * - when the system's resolvers change (another network's DHCP, a VPN's DNS), the new ones are
 *   bound and routed into the TUN too (journaled like the first), and other names are forwarded
 *   to them from then on. The old ones stay diverted until k8stun stops (DNS sent there is still
 *   answered). Resolvers tun_route cannot divert (a local stub, IPv6) are reported once per
 *   change: cluster names are then not answered through them until a restart picks forward mode.
 */
function followNetwork(
  ctx: DnsModeContext,
  plan: Map<string, string>,
  lookup: InterfaceLookup,
  everyMs: number,
  nameservers: () => string[],
): ReturnType<typeof setInterval> {
  /** Every diverted resolver and the device its queries leave by. */
  const bound = new Map(plan);
  /** A set of nameservers as one comparable text (their order does not change the diversion). */
  const asText = (servers: Iterable<string>) => [...new Set(servers)].sort().join(", ");
  /** The resolvers other names are forwarded to now. */
  let forwarding = asText(plan.keys());
  /** The last set of nameservers acted on or reported (each change is handled once). */
  let seen = forwarding;
  let busy = false;

  const followResolvers = async () => {
    const now = [...new Set(nameservers())];
    const text = asText(now);
    if (now.length === 0 || text === seen) return; // being rewritten, or nothing new
    seen = text;
    if (text === forwarding) return;
    const stub = now.every((s) => s.startsWith("127.") || s === "::1");
    const plan = routePlan(ctx, lookup, now, stub);
    const refused = (reason: string) =>
      ctx.log.warn(
        "the system's resolvers changed to {now} (another network, or a VPN's DNS), but {reason}; " +
          "cluster names are not answered through them: restart k8stun to follow them",
        { now: text, reason },
      );
    if (typeof plan === "string") return refused(plan);
    if (!ctx.forwardTo) return refused("this host cannot change the upstreams of a running k8stun");
    const fresh = [...plan].filter(([server]) => !bound.has(server));
    for (const [server, device] of fresh) ctx.bindUpstream!(server, device);
    try {
      if (fresh.length > 0) await ctx.routeToTun!(fresh.map(([server]) => server));
    } catch (error) {
      for (const [server] of fresh) ctx.unbindUpstream?.(server);
      return refused(`they cannot be routed into the TUN (${(error as Error).message})`);
    }
    for (const [server, device] of fresh) bound.set(server, device);
    ctx.forwardTo(now);
    forwarding = text;
    ctx.log.info(
      "the system's resolvers are now {now}: their DNS reaches k8stun too, and other names go to them",
      { now: text },
    );
  };

  const followDevices = () => {
    for (const [server, previous] of bound) {
      let device: string | undefined;
      try {
        device = lookup(ipv4ToNumber(server)!);
      } catch {
        continue; // unreadable for now: keep the binding, look again next time
      }
      // No route at all (the network is down): the old binding is as good as any.
      if (!device || device === previous || device === ctx.tunName) continue;
      ctx.bindUpstream!(server, device);
      bound.set(server, device);
      ctx.log.info("the resolver {server} is now reached through {device} (was {previous})", {
        server,
        device,
        previous,
      });
    }
  };

  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    followResolvers().catch((error) =>
      ctx.log.warn("following the system's resolvers failed: {error}", { error: String(error) })
    ).finally(() => {
      followDevices();
      busy = false;
    });
  }, everyMs);
  Deno.unrefTimer(timer);
  return timer;
}

/** Resolver → original device, or why tun_route cannot be used for `servers`. */
function routePlan(
  ctx: DnsModeContext,
  lookup: InterfaceLookup,
  servers: readonly string[] = ctx.resolvers.configured,
  stub = ctx.resolvers.stub,
): Map<string, string> | string {
  if (!ctx.routeToTun || !ctx.bindUpstream) return "it needs the TUN (proxy mode has none)";
  if (servers.length === 0) return "/etc/resolv.conf lists no nameserver";
  if (stub) {
    return `the system resolver ${
      servers.join(", ")
    } is a local stub (systemd-resolved or dnsmasq)`;
  }
  const plan = new Map<string, string>();
  for (const server of servers) {
    const address = ipv4ToNumber(server);
    if (address === undefined) return `the resolver ${server} is not an IPv4 address`;
    let device: string | undefined;
    try {
      device = lookup(address);
    } catch (error) {
      return `the route to the resolver ${server} cannot be read (${(error as Error).message})`;
    }
    if (!device || device === ctx.tunName) return `no route reaches the resolver ${server}`;
    plan.set(server, device);
  }
  return plan;
}
