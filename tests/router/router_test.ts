/**
 * The router (core/router.ts) on its own: a store filled by hand, resolvers and dialers that
 * record what they were asked. Which target a flow gets, which candidates a target expands to,
 * and which dialer dials which candidate after a refusal.
 */
import { assert, assertEquals } from "../assert.ts";
import { ClusterStore } from "../../core/cluster/store.ts";
import { asDialError, Router } from "../../core/router.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";
import {
  type Dialer,
  DialError,
  type DialTarget,
  type Duplex,
  type FlowRequest,
  type Resolver,
} from "../../mod.ts";

/** `demo/api` with ports 80 → 8080 and three pods, two of them ready; `demo/mail` ExternalName. */
function cluster(): ClusterStore {
  const store = new ClusterStore();
  store.applyNamespace({ metadata: { name: "demo" } });
  store.applyService({
    metadata: { namespace: "demo", name: "api" },
    spec: { clusterIP: "10.96.0.20", ports: [{ port: 80, protocol: "TCP", targetPort: 8080 }] },
  });
  store.applyService({
    metadata: { namespace: "demo", name: "empty" },
    spec: { clusterIP: "10.96.0.21", ports: [{ port: 80, protocol: "TCP" }] },
  });
  store.applyService({
    metadata: { namespace: "demo", name: "mail" },
    spec: { type: "ExternalName", externalName: "mail.example.com" },
  });
  store.applyEndpointSlice({
    metadata: { namespace: "demo", name: "api-x", labels: { "kubernetes.io/service-name": "api" } },
    addressType: "IPv4",
    ports: [{ port: 8080, protocol: "TCP" }],
    endpoints: [
      endpoint("10.244.0.1", "api-0", true),
      endpoint("10.244.0.2", "api-1", true),
      endpoint("10.244.0.3", "api-2", false),
    ],
  });
  return store;
}

function endpoint(ip: string, pod: string, ready: boolean) {
  return {
    addresses: [ip],
    conditions: { ready },
    targetRef: { kind: "Pod", namespace: "demo", name: pod },
  };
}

const api = { kind: "service", namespace: "demo", name: "api", port: 80 } as const;

function flow(fields: Partial<FlowRequest>): FlowRequest {
  return { port: 80, protocol: "tcp", front: "socks", ...fields };
}

function duplex(): Duplex {
  return {
    readable: new ReadableStream(),
    writable: new WritableStream(),
    abort() {},
  };
}

/** A dialer that records each target and fails the ones `outcome` names. */
function recordingDialer(
  name: string,
  outcome: (target: DialTarget) => DialError | undefined = () => undefined,
): Dialer & { dialed: string[] } {
  const dialed: string[] = [];
  return {
    name,
    dialed,
    accepts: () => true,
    dial(target) {
      dialed.push(target.kind === "pod" ? target.name : `${target.host}:${target.port}`);
      const failure = outcome(target);
      return failure ? Promise.reject(failure) : Promise.resolve(duplex());
    },
  };
}

function names(candidates: DialTarget[]): string[] {
  return candidates.map((c) => c.kind === "pod" ? `${c.name}:${c.port}` : `${c.host}:${c.port}`);
}

async function rejection(promise: Promise<unknown>): Promise<DialError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert(error instanceof DialError, `expected a DialError, got ${error}`);
  return error;
}

Deno.test("router: a VIP names its target before any resolver is asked", async () => {
  const vips = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
  const vip = vips.allocate({ type: "service", namespace: "demo", name: "api" });
  const asked: string[] = [];
  const resolver: Resolver = {
    name: "spy",
    resolveAddress: (address) => (asked.push(address), null),
  };
  const router = new Router({ resolvers: [resolver], dialers: [], cluster: cluster(), vips });
  assertEquals(await router.resolve(flow({ address: vip, port: 80 })), api);
  assertEquals(asked, []);
  await router.resolve(flow({ address: "10.1.2.3" })).catch(() => {});
  assertEquals(asked, ["10.1.2.3"]);
});

Deno.test("router: resolvers are asked in order; the first answer wins and keeps the flow's port unless it names one", async () => {
  const first: Resolver = { name: "first", resolveName: () => null };
  const second: Resolver = {
    name: "second",
    resolveName: (n) =>
      n === "db"
        ? { kind: "pod", namespace: "demo", name: "db-0" }
        : { kind: "host", host: "h", port: 1 },
  };
  const router = new Router({ resolvers: [first, second], dialers: [] });
  assertEquals(await router.resolve(flow({ name: "db", port: 5432 })), {
    kind: "pod",
    namespace: "demo",
    name: "db-0",
    port: 5432,
  });
  assertEquals(await router.resolve(flow({ name: "x", port: 9 })), {
    kind: "host",
    host: "h",
    port: 1,
  });
});

Deno.test("router: a destination no resolver knows is unreachable, naming it", async () => {
  const router = new Router({ resolvers: [], dialers: [] });
  const error = await rejection(router.resolve(flow({ name: "nowhere.example" })));
  assertEquals(error.reason, "unreachable");
  assert(error.message.includes("nowhere.example"), error.message);
});

Deno.test("router: a service expands to its ready pods on the target port, starting one further each time", () => {
  const router = new Router({ resolvers: [], dialers: [], cluster: cluster() });
  assertEquals(names(router.candidates(api)), ["api-0:8080", "api-1:8080"]);
  assertEquals(names(router.candidates(api)), ["api-1:8080", "api-0:8080"]);
  assertEquals(names(router.candidates(api)), ["api-0:8080", "api-1:8080"]);
});

Deno.test("router: ExternalName becomes its host, pods and hosts are dialed as they are", () => {
  const router = new Router({ resolvers: [], dialers: [], cluster: cluster() });
  assertEquals(
    names(router.candidates({ kind: "service", namespace: "demo", name: "mail", port: 25 })),
    ["mail.example.com:25"],
  );
  assertEquals(
    names(router.candidates({ kind: "pod", namespace: "demo", name: "api-2", port: 9 })),
    ["api-2:9"],
  );
  assertEquals(names(router.candidates({ kind: "host", host: "10.0.0.1", port: 7 })), [
    "10.0.0.1:7",
  ]);
});

Deno.test("router: a missing service, a port the service lacks, no ready pods and no port each fail with their own reason", () => {
  const router = new Router({ resolvers: [], dialers: [], cluster: cluster() });
  const failure = (f: () => unknown) => {
    try {
      f();
    } catch (error) {
      assert(error instanceof DialError);
      return [error.reason, error.message];
    }
    throw new Error("expected a DialError");
  };
  assertEquals(failure(() => router.candidates({ ...api, name: "gone" }))[0], "unreachable");
  const [reason, message] = failure(() => router.candidates({ ...api, port: 81 }));
  assertEquals(reason, "refused");
  assert(message.includes("no port 81 (ports: 80)"), message);
  const [emptyReason, emptyMessage] = failure(() => router.candidates({ ...api, name: "empty" }));
  assertEquals(emptyReason, "unreachable");
  assert(emptyMessage.includes("no ready endpoints"), emptyMessage);
  assertEquals(failure(() => router.candidates({ ...api, port: undefined }))[0], "unreachable");
});

Deno.test("router: a refused pod moves the flow to the next ready pod; other failures end it", async () => {
  const refusing = recordingDialer(
    "pf",
    (t) => t.kind === "pod" && t.name === "api-0" ? new DialError("refused", "no") : undefined,
  );
  const vips = { lookup: () => ({ type: "service" as const, namespace: "demo", name: "api" }) };
  const routed = new Router({ resolvers: [], dialers: [refusing], cluster: cluster(), vips });
  const opened = await routed.open(flow({ address: "198.18.0.9" }), new AbortController().signal);
  assertEquals(refusing.dialed, ["api-0", "api-1"]);
  assertEquals(opened.dialer, "pf");
  assertEquals(opened.dialed.kind === "pod" && opened.dialed.name, "api-1");

  const timingOut = recordingDialer("pf", () => new DialError("timeout", "slow"));
  const stopping = new Router({ resolvers: [], dialers: [timingOut], cluster: cluster(), vips });
  const error = await rejection(
    stopping.open(flow({ address: "198.18.0.9" }), new AbortController().signal),
  );
  assertEquals(error.reason, "timeout");
  assertEquals(timingOut.dialed.length, 1);
});

Deno.test("router: at most maxAttempts pods are tried", async () => {
  const refusing = recordingDialer("pf", () => new DialError("refused", "no"));
  const vips = { lookup: () => ({ type: "service" as const, namespace: "demo", name: "api" }) };
  const router = new Router({
    resolvers: [],
    dialers: [refusing],
    cluster: cluster(),
    vips,
    maxAttempts: 1,
  });
  const error = await rejection(
    router.open(flow({ address: "198.18.0.9" }), new AbortController().signal),
  );
  assertEquals(error.reason, "refused");
  assertEquals(refusing.dialed.length, 1);
});

Deno.test("router: the first dialer that accepts dials; one whose accepts throws is passed over", async () => {
  const broken: Dialer = {
    name: "broken",
    accepts: () => {
      throw new Error("bug");
    },
    dial: () => Promise.reject(new Error("never")),
  };
  const declining: Dialer = { ...recordingDialer("declining"), accepts: () => false };
  const taking = recordingDialer("taking");
  const resolver: Resolver = { name: "r", resolveName: () => ({ kind: "host", host: "h" }) };
  const withResolver = new Router({ resolvers: [resolver], dialers: [broken, declining, taking] });
  const opened = await withResolver.open(flow({ name: "h" }), new AbortController().signal);
  assertEquals(opened.dialer, "taking");
  assertEquals(taking.dialed, ["h:80"]);
  const none = new Router({ resolvers: [resolver], dialers: [broken, declining] });
  const error = await rejection(none.open(flow({ name: "h" }), new AbortController().signal));
  assertEquals(error.reason, "unreachable");
  assert(error.message.includes("no dialer accepts h:80"), error.message);
});

Deno.test("router: whatever a dialer throws becomes a DialError with a reason", () => {
  assertEquals(asDialError(new Deno.errors.ConnectionRefused("x"), "d").reason, "refused");
  assertEquals(asDialError(new Deno.errors.TimedOut("x"), "d").reason, "timeout");
  const plain = asDialError("text", "d");
  assertEquals([plain.reason, plain.message], ["error", "dialer d: text"]);
  // A DialError from another copy of mod.ts (a plugin that bundled it) keeps its reason.
  const foreign = Object.assign(new Error("pod said no"), {
    name: "DialError",
    reason: "forbidden",
  });
  const kept = asDialError(foreign, "d");
  assert(kept instanceof DialError);
  assertEquals([kept.reason, kept.message], ["forbidden", "pod said no"]);
});

const hostResolver: Resolver = {
  name: "host",
  resolveAddress: () => ({ kind: "host", host: "10.9.0.1" }),
};

Deno.test("router: sockets are described only when every candidate's dialer has one; a dialer that throws there is dialed instead", async () => {
  const plain = recordingDialer("plain");
  const router = new Router({ resolvers: [hostResolver], dialers: [plain] });
  const route = await router.route(flow({ address: "10.9.0.1" }));
  assertEquals(await router.sockets(route), undefined, "no socket: dial it");
  const describing: Dialer = {
    ...recordingDialer("describing"),
    socket: (target) =>
      target.kind === "host" ? { address: target.host, port: target.port } : undefined,
  };
  const fast = new Router({ resolvers: [hostResolver], dialers: [describing] });
  const attempts = await fast.sockets(await fast.route(flow({ address: "10.9.0.1" })));
  assertEquals(attempts?.map((a) => [a.dialer, a.socket]), [
    ["describing", { address: "10.9.0.1", port: 80 }],
  ]);
  const broken: Dialer = {
    ...recordingDialer("broken"),
    socket: () => {
      throw new Error("a plugin's bug");
    },
  };
  const fallback = new Router({ resolvers: [hostResolver], dialers: [broken] });
  const brokenRoute = await fallback.route(flow({ address: "10.9.0.1" }));
  assertEquals(
    await fallback.sockets(brokenRoute),
    undefined,
    "the fast path is lost, not the flow",
  );
  assertEquals(
    (await fallback.dial(brokenRoute, new AbortController().signal, {
      flow: flow({ address: "10.9.0.1" }),
    })).dialer,
    "broken",
  );
});

Deno.test("router: asking for a route's sockets and then dialing it asks each dialer once per candidate", async () => {
  let asked = 0;
  const counting: Dialer = { ...recordingDialer("counting"), accepts: () => (asked++, true) };
  const router = new Router({ resolvers: [hostResolver], dialers: [counting] });
  const request = flow({ address: "10.9.0.1" });
  const route = await router.route(request);
  assertEquals(await router.sockets(route), undefined);
  await router.dial(route, new AbortController().signal, { flow: request });
  assertEquals(asked, 1);
});
