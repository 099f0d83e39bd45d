/** The built-in DNS modes' decisions, with the system calls replaced (issue #5 build item 3). */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import type { DnsMode, DnsModeContext } from "../../mod.ts";
import {
  forwardMode,
  forwardResolvConf,
  isFileForwardChanges,
  repairOrphanedResolvConf,
  resolvConfWithoutK8stun,
} from "../../plugins/dns/forward.ts";
import { tunRouteMode } from "../../plugins/dns/tun_route.ts";
import { FileJournal } from "../../core/journal.ts";

function context(overrides: Partial<DnsModeContext> = {}) {
  const logged: string[] = [];
  const routed: string[] = [];
  const bound: [string, string][] = [];
  const unbound: string[] = [];
  const ctx: DnsModeContext = {
    server: { address: "127.0.0.153", port: 53 },
    tunServer: { address: "198.19.255.254", port: 53 },
    domains: ["cluster.local", "svc", "demo"],
    tunName: "tun7",
    resolvers: { configured: ["10.77.0.2"], upstreams: ["10.77.0.2"], stub: false },
    routeToTun: (addresses) => {
      routed.push(...addresses);
      return Promise.resolve();
    },
    bindUpstream: (server, device) => void bound.push([server, device]),
    unbindUpstream: (server) => void unbound.push(server),
    journal: { recordFile: () => Promise.resolve(), recordStep: () => Promise.resolve() },
    log: {
      debug: () => {},
      info: (m, p) => void logged.push(fill(m, p)),
      warn: (m, p) => void logged.push(fill(m, p)),
      error: (m, p) => void logged.push(fill(m, p)),
    },
    ...overrides,
  };
  return { ctx, logged, routed, bound, unbound };
}

function fill(message: string, properties?: Record<string, unknown>): string {
  return message.replace(/\{(\w+)\}/g, (_, k) => String(properties?.[k]));
}

/** A forward mode that only records that it ran. */
function recordingForward(): DnsMode & { calls: string[] } {
  const calls: string[] = [];
  return {
    name: "forward",
    calls,
    apply: () => Promise.resolve(void calls.push("apply")),
    revert: () => Promise.resolve(void calls.push("revert")),
  };
}

Deno.test("tun_route: routes the resolver into the TUN and binds its queries to the old device", async () => {
  const forward = recordingForward();
  const mode = tunRouteMode(forward, () => "veth0");
  const { ctx, routed, bound, unbound } = context();
  await mode.apply(ctx);
  assertEquals(routed, ["10.77.0.2"]);
  assertEquals(bound, [["10.77.0.2", "veth0"]]);
  assertEquals(unbound, [], "diverted: queries keep leaving through the old device");
  await mode.revert(ctx);
  assertEquals(forward.calls, [], "nothing outside the TUN to undo");
});

Deno.test("tun_route: when the resolver is reached through another interface (docked: Wi-Fi, then Ethernet), its queries follow; no more after revert", async () => {
  let device: string | undefined = "wlan0";
  const mode = tunRouteMode(recordingForward(), () => device, 5);
  const { ctx, bound, logged } = context();
  await mode.apply(ctx);
  const settle = () => new Promise((resolve) => setTimeout(resolve, 40));
  device = undefined; // the network is down for a moment: the binding stays
  await settle();
  assertEquals(bound, [["10.77.0.2", "wlan0"]]);
  device = "eth0";
  await settle();
  assertEquals(bound, [["10.77.0.2", "wlan0"], ["10.77.0.2", "eth0"]], "bound once to eth0");
  assert(logged.some((l) => /10\.77\.0\.2 is now reached through eth0 \(was wlan0\)/.test(l)));
  await mode.revert(ctx);
  device = "wlan1";
  await settle();
  assertEquals(bound.length, 2, "stopped following at revert");
});

Deno.test("tun_route: when the system's resolvers change (another network, a VPN's DNS), the new ones are bound, routed into the TUN and forwarded to; ones it cannot divert are reported once", async () => {
  let nameservers = ["10.77.0.2"];
  const mode = tunRouteMode(recordingForward(), () => "wlan0", 5, () => nameservers);
  const forwarded: string[][] = [];
  const { ctx, logged, routed, bound } = context({
    forwardTo: (servers) => void forwarded.push(servers),
  });
  await mode.apply(ctx);
  const settle = () => new Promise((resolve) => setTimeout(resolve, 40));
  await settle();
  assertEquals([routed, forwarded], [["10.77.0.2"], []], "unchanged: nothing to do");

  nameservers = ["10.8.0.1", "10.77.0.2"]; // a VPN's resolver first, the router's after it
  await settle();
  assertEquals(routed, ["10.77.0.2", "10.8.0.1"], "only the new one is routed");
  assertEquals(bound.at(-1), ["10.8.0.1", "wlan0"], "bound before it is routed");
  assertEquals(forwarded, [["10.8.0.1", "10.77.0.2"]], "other names go to both, in order");
  assert(logged.some((l) => /resolvers are now 10\.77\.0\.2, 10\.8\.0\.1: their DNS/.test(l)));

  nameservers = []; // resolv.conf being rewritten: nothing happens
  await settle();
  nameservers = ["127.0.0.53"]; // a local stub: cannot be diverted
  await settle();
  await settle();
  const stubbed = logged.filter((l) => /changed to 127\.0\.0\.53 .*local stub/.test(l));
  assertEquals(stubbed.length, 1, "said once");
  assertMatch(stubbed[0], /restart k8stun to follow them/);
  assertEquals(forwarded.length, 1, "upstreams unchanged");

  nameservers = ["10.77.0.2"]; // back home: already diverted, forwarded to again
  await settle();
  assertEquals(routed.length, 2, "nothing routed again");
  assertEquals(forwarded.at(-1), ["10.77.0.2"]);
  await mode.revert(ctx);
});

for (
  const [why, overrides, reason] of [
    [
      "a local stub resolver",
      { resolvers: { configured: ["127.0.0.53"], upstreams: ["192.0.2.1"], stub: true } },
      /local stub/,
    ],
    ["proxy mode (no TUN)", { routeToTun: undefined }, /needs the TUN/],
    [
      "an IPv6 resolver",
      { resolvers: { configured: ["2001:db8::1"], upstreams: ["2001:db8::1"], stub: false } },
      /not an IPv4 address/,
    ],
    [
      "no nameserver",
      { resolvers: { configured: [], upstreams: [], stub: false } },
      /lists no nameserver/,
    ],
  ] as const
) {
  Deno.test(`tun_route: ${why} falls back to forward and says why, never refusing to start`, async () => {
    const forward = recordingForward();
    const mode = tunRouteMode(forward, () => "eth0");
    const { ctx, logged, routed } = context(overrides as Partial<DnsModeContext>);
    await mode.apply(ctx);
    assertEquals(forward.calls, ["apply"]);
    assertEquals(routed, []);
    assert(
      logged.some((l) => reason.test(l) && /using forward mode instead/.test(l)),
      logged.join(),
    );
    await mode.revert(ctx);
    assertEquals(forward.calls, ["apply", "revert"]);
  });
}

Deno.test("tun_route: a route lookup that fails (a malformed macOS routing reply) falls back to forward with the reason", async () => {
  const forward = recordingForward();
  const mode = tunRouteMode(forward, () => {
    throw new Error("the route reply names no interface");
  });
  const { ctx, logged, routed, bound } = context();
  const applied = await mode.apply(ctx);
  assertEquals(forward.calls, ["apply"]);
  assertEquals([routed, bound], [[], []]);
  assertEquals(applied?.mode, "forward");
  assert(
    logged.some((l) =>
      /route to the resolver 10\.77\.0\.2 cannot be read \(the route reply names no interface\)/
        .test(l)
    ),
    logged.join(),
  );
});

Deno.test("tun_route: a resolver route the system refuses falls back to forward with the reason, never refusing to start", async () => {
  const forward = recordingForward();
  const mode = tunRouteMode(forward, () => "en0");
  const { ctx, logged, bound, unbound } = context({
    routeToTun: () =>
      Promise.reject(new Error("cannot add the route 10.77.0.2/32: it already exists")),
  });
  const applied = await mode.apply(ctx);
  assertEquals(applied?.mode, "forward");
  assertEquals(forward.calls, ["apply"]);
  assertEquals(bound, [["10.77.0.2", "en0"]], "bound before the diversion was tried");
  assertEquals(unbound, ["10.77.0.2"], "forward reaches the resolver by the routing table");
  assert(
    logged.some((l) =>
      /cannot be routed into the TUN \(cannot add the route 10\.77\.0\.2\/32/.test(l)
    ),
    logged.join(),
  );
  await mode.revert(ctx);
  assertEquals(forward.calls, ["apply", "revert"], "the fallback's files are undone");
});

Deno.test("forward: under systemd-resolved, per-link split DNS for the cluster domains only", async () => {
  const commands: string[][] = [];
  const dir = await Deno.makeTempDir();
  const path = `${dir}/resolv.conf`;
  await Deno.writeTextFile(path, "nameserver 127.0.0.53\noptions edns0\n");
  try {
    const mode = forwardMode({
      path,
      resolvedActive: (configured) => Promise.resolve(configured.includes("127.0.0.53")),
      resolvectl: (args) => Promise.resolve(void commands.push(args)),
    });
    const { ctx } = context({
      resolvers: { configured: ["127.0.0.53"], upstreams: ["192.0.2.1"], stub: true },
    });
    await mode.apply(ctx);
    assertEquals(commands, [
      ["dns", "tun7", "198.19.255.254"],
      ["domain", "tun7", "~cluster.local", "~svc", "~demo"],
      ["default-route", "tun7", "false"],
    ]);
    assertEquals(await Deno.readTextFile(path), "nameserver 127.0.0.53\noptions edns0\n");
    await mode.revert(ctx);
    assertEquals(commands.at(-1), ["revert", "tun7"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forward: a resolv.conf written again by another program (NetworkManager, DHCP) is said once, and once when it points at k8stun again", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/resolv.conf`;
  await Deno.writeTextFile(path, "nameserver 192.0.2.1\n");
  try {
    const mode = forwardMode({
      os: "linux",
      path,
      resolvedActive: () => Promise.resolve(false),
      watchEveryMs: 5,
    });
    const { ctx, logged } = context({
      resolvers: { configured: ["192.0.2.1"], upstreams: ["192.0.2.1"], stub: false },
    });
    await mode.apply(ctx);
    const ours = await Deno.readTextFile(path);
    assertMatch(ours, /^nameserver 127\.0\.0\.153$/m);
    const settle = () => new Promise((resolve) => setTimeout(resolve, 40));
    await settle();
    const lost = (l: string) => /written again by another program .*restart k8stun/.test(l);
    assertEquals(logged.filter(lost).length, 0, "k8stun's own file: nothing said");
    await Deno.writeTextFile(path, "nameserver 198.51.100.1\n"); // another network's DHCP
    await settle();
    await settle();
    assertEquals(logged.filter(lost).length, 1, "said once");
    await Deno.writeTextFile(path, ours);
    await settle();
    assert(logged.some((l) => /points at k8stun's DNS again/.test(l)));
    await mode.revert(ctx);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forward on macOS: one journaled /etc/resolver file per cluster domain, removed on revert", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const journal = new FileJournal(`${dir}/journal.json`);
    const mode = forwardMode({ os: "darwin", resolverDir: `${dir}/resolver` });
    const { ctx } = context({ journal });
    await mode.apply(ctx);
    for (const domain of ["cluster.local", "svc", "demo"]) {
      const text = await Deno.readTextFile(`${dir}/resolver/${domain}`);
      assert(text.includes("nameserver 127.0.0.153\nport 53\n"), text);
    }
    const crashLeftovers = JSON.parse(await Deno.readTextFile(`${dir}/journal.json`));
    assertEquals(crashLeftovers.entries.length, 3, "journaled before written");
    await mode.revert(ctx);
    assertEquals([...Deno.readDirSync(`${dir}/resolver`)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forward on macOS: a cluster namespace that is not a domain name gets no resolver file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const journal = new FileJournal(`${dir}/journal.json`);
    const mode = forwardMode({ os: "darwin", resolverDir: `${dir}/resolver` });
    const { ctx, logged } = context({ journal, domains: ["demo", "../escaped", "a/b", ".."] });
    await mode.apply(ctx);
    assertEquals([...Deno.readDirSync(`${dir}/resolver`)].map((e) => e.name), ["demo"]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "journal.json",
      "resolver",
    ]);
    assert(logged.some((l) => l.includes("../escaped: not a domain name")), logged.join("\n"));
    await mode.revert(ctx);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forward: cleanup may touch exactly the files forward writes on each OS (macOS: /etc/resolver/<domain> only)", () => {
  for (const path of ["/etc/resolver/cluster.local", "/etc/resolver/svc", "/etc/resolver/demo"]) {
    assert(isFileForwardChanges(path, "darwin"), path);
    assert(!isFileForwardChanges(path, "linux"), `${path} on Linux`);
  }
  assert(isFileForwardChanges("/etc/resolv.conf", "linux"));
  for (
    const path of [
      "/etc/resolv.conf", // configd's on macOS: forward never writes it there
      "/etc/resolver/../shadow",
      "/etc/resolver/..",
      "/etc/resolver/a/b",
      "/etc/resolver/",
      "/etc/resolverx/cluster.local",
      "/private/etc/resolver/cluster.local",
      "/etc/resolver/cluster.local/",
      "/etc/resolver/-x",
    ]
  ) {
    assert(!isFileForwardChanges(path, "darwin"), path);
  }
});

Deno.test("forward: resolv.conf names k8stun first and keeps two original servers after it, for a k8stun that dies; rotate is dropped", () => {
  const original = [
    "# from DHCP",
    "search corp.example",
    "nameserver 10.0.0.2",
    "nameserver 10.0.0.3",
    "nameserver 10.0.0.4",
    "options rotate timeout:2",
    "",
  ].join("\n");
  const written = forwardResolvConf(original, "127.0.0.153");
  const nameservers = written.split("\n").filter((l) => l.startsWith("nameserver"));
  assertEquals(nameservers, [
    "nameserver 127.0.0.153",
    "nameserver 10.0.0.2",
    "nameserver 10.0.0.3",
  ]);
  assert(written.includes("search corp.example\n"), written);
  assert(written.includes("options timeout:2\n"), written);
  assert(!/rotate/.test(written), written);
});

Deno.test("forward: an options line of rotate alone goes; k8stun's own address is never a fallback; no servers, no fallback comment", () => {
  const written = forwardResolvConf(
    "nameserver 127.0.0.153\nnameserver 192.0.2.1\noptions rotate\n",
    "127.0.0.153",
  );
  assertEquals(written.split("\n").filter((l) => !l.startsWith("#")), [
    "nameserver 127.0.0.153",
    "nameserver 192.0.2.1",
    "",
  ]);
  const bare = forwardResolvConf("search lan\n", "127.0.0.153");
  assertEquals(bare.split("\n").filter((l) => !l.startsWith("# written")), [
    "nameserver 127.0.0.153",
    "search lan",
    "",
  ]);
});

Deno.test("forward: k8stun's lines come out of a resolv.conf whose journal is gone, if no one edited it since", async () => {
  const original = "search corp.example\nnameserver 10.0.0.2\noptions timeout:2\n";
  const written = forwardResolvConf(original, "127.0.0.153");
  assertEquals(
    resolvConfWithoutK8stun(written),
    "nameserver 10.0.0.2\nsearch corp.example\noptions timeout:2\n",
  );
  // A file with lines added since is left alone, as the journal would leave it.
  assertEquals(resolvConfWithoutK8stun(`${written}nameserver 10.0.0.9\n`), undefined);
  assertEquals(resolvConfWithoutK8stun(`${written}options rotate\n`), undefined);
  assertEquals(resolvConfWithoutK8stun(original), undefined, "not k8stun's file");
  assertEquals(resolvConfWithoutK8stun(`# a note\n${written}`), undefined, "only a file it starts");

  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/resolv.conf`;
    await Deno.writeTextFile(path, written);
    assertMatch((await repairOrphanedResolvConf(path))!, /k8stun's lines removed/);
    assertEquals(
      await Deno.readTextFile(path),
      "nameserver 10.0.0.2\nsearch corp.example\noptions timeout:2\n",
    );
    assertEquals(await repairOrphanedResolvConf(path), undefined, "a second run finds nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
