/**
 * The Router: every flow, from the TUN or a proxy front, goes through it. Resolvers turn the
 * destination into a {@link Target}; the target is expanded into concrete dial candidates (ready
 * pods for a service, spread round-robin); the first dialer that accepts a candidate dials it,
 * and a refusal moves on to the next candidate before the flow fails.
 */
import {
  type Dialer,
  DialError,
  type DialFailure,
  type DialTarget,
  type Duplex,
  type FlowRequest,
  type Resolver,
  type SocketDial,
  type Target,
} from "../mod.ts";
import type { ClusterView } from "./cluster/types.ts";
import { replayingDuplex } from "./stream/replaying_duplex.ts";
import type { VipTarget } from "./telemetry.ts";

/** The part of the VIP pool the router needs. */
export interface VipLookup {
  /** The target a VIP stands for, marking it used. */
  lookup(vip: string): VipTarget | undefined;
}

/** Outcome of opening a flow. */
export interface OpenedFlow {
  target: Target;
  dialed: DialTarget;
  dialer: string;
  duplex: Duplex;
}

/** A flow's target, and the candidates to dial for it in order. */
export interface Route {
  target: Target;
  candidates: DialTarget[];
}

/** One candidate of a route as a socket to open ({@link Router.sockets}). */
export interface SocketAttempt {
  dialed: DialTarget;
  dialer: string;
  socket: SocketDial;
}

/** What the router was built from. */
export interface RouterOptions {
  resolvers: Resolver[];
  dialers: Dialer[];
  cluster?: ClusterView;
  vips?: VipLookup;
  /** How many ready endpoints to try before giving up on a service (default 3). */
  maxAttempts?: number;
}

/** Routes flows to dialers. */
export class Router {
  /** Each candidate's dialer, by the candidate object a route holds (#firstAccepting). */
  readonly #chosen = new WeakMap<DialTarget, Promise<Dialer | undefined>>();
  readonly #resolvers: Resolver[];
  readonly #dialers: Dialer[];
  readonly #cluster?: ClusterView;
  readonly #vips?: VipLookup;
  readonly #maxAttempts: number;
  /** Round-robin cursor per service, so sequential connections spread over ready pods. */
  readonly #cursor = new Map<string, number>();

  constructor(options: RouterOptions) {
    this.#resolvers = options.resolvers;
    this.#dialers = options.dialers;
    this.#cluster = options.cluster;
    this.#vips = options.vips;
    this.#maxAttempts = options.maxAttempts ?? 3;
  }

  /** Resolves a flow's destination to a target, or throws a `DialError("unreachable")`. */
  async resolve(flow: FlowRequest): Promise<Target> {
    if (flow.address && this.#vips) {
      const vip = this.#vips.lookup(flow.address);
      if (vip) return { kind: vip.type, namespace: vip.namespace, name: vip.name, port: flow.port };
    }
    for (const resolver of this.#resolvers) {
      const found = flow.name
        ? await resolver.resolveName?.(flow.name)
        : flow.address
        ? await resolver.resolveAddress?.(flow.address)
        : null;
      if (found) return { ...found, port: found.port ?? flow.port };
    }
    const what = flow.name ?? flow.address ?? "?";
    throw new DialError("unreachable", `no resolver knows ${what}`);
  }

  /**
   * Expands a target into dial candidates: a service becomes its ready endpoints (target port
   * resolved, rotated so consecutive flows start on different pods); an ExternalName service
   * becomes its external host; pods and hosts are dialed as they are.
   */
  candidates(target: Target): DialTarget[] {
    const port = target.port;
    if (port === undefined) throw new DialError("unreachable", `no port for ${describe(target)}`);
    if (target.kind === "host") return [{ kind: "host", host: target.host, port }];
    if (target.kind === "pod") {
      const pod = this.#cluster?.pod(target.namespace, target.name);
      return [{ kind: "pod", namespace: target.namespace, name: target.name, port, ip: pod?.ip }];
    }
    const service = this.#cluster?.service(target.namespace, target.name);
    if (!service) throw new DialError("unreachable", `${describe(target)} not found`);
    if (service.type === "ExternalName" && service.externalName) {
      return [{ kind: "host", host: service.externalName, port }];
    }
    if (!service.ports.some((p) => p.port === port)) {
      const known = service.ports.map((p) => p.port).join(", ") || "none";
      throw new DialError(
        "refused",
        `${describe(target)} has no port ${port} (ports: ${known})`,
      );
    }
    const endpoints = this.#cluster!.readyEndpoints(target.namespace, target.name, port);
    if (endpoints.length === 0) {
      throw new DialError("unreachable", `${describe(target)} has no ready endpoints`);
    }
    const key = `${target.namespace}/${target.name}`;
    const start = (this.#cursor.get(key) ?? 0) % endpoints.length;
    this.#cursor.set(key, start + 1);
    const rotated = [...endpoints.slice(start), ...endpoints.slice(0, start)];
    return rotated.map((e): DialTarget =>
      e.pod
        ? { kind: "pod", namespace: e.pod.namespace, name: e.pod.name, port: e.port, ip: e.ip }
        : { kind: "host", host: e.ip, port: e.port }
    );
  }

  /** Resolves a flow and lists what to dial for it, in order (at most the attempts allowed). */
  async route(flow: FlowRequest): Promise<Route> {
    const target = await this.resolve(flow);
    return { target, candidates: this.candidates(target).slice(0, this.#maxAttempts) };
  }

  /**
   * Resolves and dials a flow. A refused candidate is skipped in favour of the next ready one;
   * any other failure ends the attempt. Throws `DialError` with the last reason.
   *
   * With `early`, dialers may hand the stream over before the pod confirmed it; a late refusal
   * then replays the first bytes on the next candidate ({@link replayingDuplex}), so the caller
   * sees one connection either way, without paying a round trip per connection.
   */
  async open(
    flow: FlowRequest,
    signal: AbortSignal,
    options: { early?: boolean } = {},
  ): Promise<OpenedFlow> {
    return await this.dial(await this.route(flow), signal, { ...options, flow });
  }

  /** Dials a route's candidates as {@link open} does. */
  async dial(
    route: Route,
    signal: AbortSignal,
    options: { early?: boolean; flow: FlowRequest },
  ): Promise<OpenedFlow> {
    const { target } = route;
    const candidates = [...route.candidates];
    const early = options.early === true;
    const flow = options.flow;
    let last: DialError | undefined;
    const dialNext = async (): Promise<Omit<OpenedFlow, "target">> => {
      for (let dialed = candidates.shift(); dialed; dialed = candidates.shift()) {
        const dialer = await this.#firstAccepting(dialed);
        if (!dialer) {
          throw new DialError("unreachable", `no dialer accepts ${describeDial(dialed)}`);
        }
        try {
          const duplex = await dialer.dial(dialed, { signal, flow, early });
          return { dialed, dialer: dialer.name, duplex };
        } catch (error) {
          last = asDialError(error, dialer.name);
          if (last.reason !== "refused" || signal.aborted) break;
        }
      }
      throw last ?? new DialError("unreachable", `no candidates for ${describe(target)}`);
    };
    const first = await dialNext();
    const redial = candidates.length > 0 ? async () => (await dialNext()).duplex : undefined;
    return { target, ...first, duplex: replayingDuplex(first.duplex, redial) };
  }

  /**
   * The sockets to open for a route instead of dialing it, in the candidates' order, when each
   * candidate's dialer describes one ({@link Dialer.socket}); otherwise undefined (dial it).
   * Throws like {@link dial} when no dialer accepts a candidate.
   */
  async sockets(route: Route): Promise<SocketAttempt[] | undefined> {
    const attempts: SocketAttempt[] = [];
    for (const dialed of route.candidates) {
      const dialer = await this.#firstAccepting(dialed);
      if (!dialer) throw new DialError("unreachable", `no dialer accepts ${describeDial(dialed)}`);
      let socket: SocketDial | undefined;
      try {
        socket = dialer.socket?.(dialed);
      } catch {
        socket = undefined; // a plugin's mistake costs it the fast path, not the connection
      }
      if (!socket) return undefined;
      attempts.push({ dialed, dialer: dialer.name, socket });
    }
    return attempts.length > 0 ? attempts : undefined;
  }

  /**
   * The dialer for a candidate, asked once per candidate: {@link sockets} and then {@link dial}
   * of the same route get the same answer without asking the dialers (maybe isolated plugins,
   * each question a round trip to their Worker) again.
   */
  #firstAccepting(target: DialTarget): Promise<Dialer | undefined> {
    let chosen = this.#chosen.get(target);
    if (!chosen) {
      chosen = (async () => {
        for (const dialer of this.#dialers) if (await safeAccepts(dialer, target)) return dialer;
        return undefined;
      })();
      this.#chosen.set(target, chosen);
    }
    return chosen;
  }
}

async function safeAccepts(dialer: Dialer, target: DialTarget): Promise<boolean> {
  try {
    return (await dialer.accepts(target)) === true;
  } catch {
    return false;
  }
}

/** Normalises whatever a dialer threw into a `DialError` naming the dialer. */
export function asDialError(error: unknown, dialer: string): DialError {
  if (error instanceof DialError) return error;
  if (isDialErrorLike(error)) return new DialError(error.reason, error.message, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  const reason: DialFailure = error instanceof Deno.errors.ConnectionRefused
    ? "refused"
    : error instanceof Deno.errors.TimedOut
    ? "timeout"
    : "error";
  return new DialError(reason, `dialer ${dialer}: ${message}`, { cause: error });
}

/**
 * A `DialError` from another copy of the class (a plugin that bundled `mod.ts` instead of using
 * `ctx.DialError`) still carries its classification.
 */
function isDialErrorLike(error: unknown): error is { reason: DialFailure; message: string } {
  const reasons: DialFailure[] = ["refused", "unreachable", "timeout", "forbidden", "error"];
  return error instanceof Error && error.name === "DialError" &&
    reasons.includes((error as { reason?: DialFailure }).reason!);
}

/** `kind namespace/name:port` for log lines. */
export function describe(target: Target): string {
  const port = target.port === undefined ? "" : `:${target.port}`;
  return target.kind === "host"
    ? `${target.host}${port}`
    : `${target.kind} ${target.namespace}/${target.name}${port}`;
}

export function describeDial(target: DialTarget): string {
  return target.kind === "host"
    ? `${target.host}:${target.port}`
    : `pod ${target.namespace}/${target.name}:${target.port}`;
}
