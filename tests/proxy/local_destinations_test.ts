/**
 * The proxy's pass-through path stays off this machine (loopback, link-local, unspecified) unless
 * `--proxy-allow-local`, and the PAC file takes the proxy's credentials and lists only what the
 * proxy routes.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DialError } from "../../mod.ts";
import { passthroughResolver } from "../../cli/proxy_front.ts";
import { isLocalAddress } from "../../core/proxy/local_address.ts";
import { proxyOverSim } from "./sim_proxy.ts";

const scope = {
  clusterDomain: "cluster.local",
  isNamespace: (ns: string) => ns === "demo",
  explicitNamespaces: new Set<string>(),
};

async function curl(...args: string[]) {
  const out = await new Deno.Command("curl", {
    args: ["-s", "-m", "10", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

/** A loopback HTTP server standing in for a local service (k8stun's own API, say). */
function localService() {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("local secret\n"),
  );
  return { port: server.addr.port, [Symbol.asyncDispose]: () => server.shutdown() };
}

Deno.test("proxy: loopback, link-local and unspecified addresses are local; others are not", () => {
  for (
    const local of [
      "127.0.0.1",
      "127.8.9.10",
      "0.0.0.0",
      "169.254.169.254",
      "::1",
      "[::1]",
      "::",
      "fe80::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "0:0:0:0:0:0:0:1",
    ]
  ) assert(isLocalAddress(local), local);
  for (
    const remote of [
      "10.0.0.1",
      "198.18.0.5",
      "8.8.8.8",
      "2001:db8::1",
      "::ffff:8.8.8.8",
      "fd00::1",
    ]
  ) assert(!isLocalAddress(remote), remote);
});

Deno.test("proxy: the pass-through resolver refuses local destinations, also by name, and dials the checked address", async () => {
  const answers: Record<string, string[]> = {
    "rebind.example": ["93.184.216.34", "127.0.0.1"],
    "public.example": ["2001:db8::1", "93.184.216.34"],
  };
  const lookup = (name: string) =>
    answers[name] ? Promise.resolve(answers[name]) : Promise.reject(new Error("not found"));
  const resolver = passthroughResolver(scope, { lookup });
  for (const name of ["localhost", "LOCALHOST.", "api.localhost", "rebind.example", "[::1]"]) {
    const error = await Promise.resolve(resolver.resolveName!(name)).catch((e) => e);
    assert(error instanceof DialError && error.reason === "forbidden", `${name}: ${error}`);
    assertMatch(error.message, /--proxy-allow-local/);
  }
  for (const address of ["127.0.0.1", "169.254.169.254", "0.0.0.0"]) {
    const error = await Promise.resolve(resolver.resolveAddress!(address)).catch((e) => e);
    assert(error instanceof DialError && error.reason === "forbidden", address);
  }
  assertEquals(await resolver.resolveName!("public.example"), {
    kind: "host",
    host: "93.184.216.34",
  });
  assertEquals(await resolver.resolveAddress!("10.1.2.3"), { kind: "host", host: "10.1.2.3" });
  const missing = await Promise.resolve(resolver.resolveName!("nowhere.example")).catch((e) => e);
  assertEquals(missing.reason, "unreachable");
  const allowed = passthroughResolver(scope, { lookup, allowLocal: true });
  assertEquals(await allowed.resolveName!("localhost"), { kind: "host", host: "localhost" });
});

Deno.test("proxy: through a SOCKS upstream, names go to the upstream unresolved (only it may know them)", async () => {
  const lookup = () => Promise.reject(new Error("this machine cannot resolve it"));
  const resolver = passthroughResolver(scope, { lookup, viaUpstream: true });
  assertEquals(await resolver.resolveName!("db.bastion-only.internal"), {
    kind: "host",
    host: "db.bastion-only.internal",
  });
});

Deno.test({
  name:
    "proxy: SOCKS5 and HTTP clients cannot reach this machine's loopback services unless --proxy-allow-local",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using service = localService();
    const url = `http://127.0.0.1:${service.port}/`;
    {
      await using p = await proxyOverSim();
      // curl 97: the SOCKS5 reply was "connection not allowed by ruleset" (RFC 1928 §6).
      assertEquals((await curl("-x", `socks5h://${p.socks}`, url)).code, 97);
      assertEquals(
        (await curl("-x", `socks5h://${p.socks}`, `http://localhost:${service.port}/`)).code,
        97,
      );
      const viaHttp = await curl("-o", "/dev/null", "-w", "%{http_code}", "-x", p.http, url);
      assertEquals(viaHttp.stdout, "403");
      const tunnel = await curl("-p", "-x", p.http, url);
      assert(tunnel.code !== 0 && !tunnel.stdout.includes("local secret"));
    }
    {
      await using p = await proxyOverSim(undefined, { allowLocal: true });
      assertEquals((await curl("-x", `socks5h://${p.socks}`, url)).stdout, "local secret\n");
      assertEquals((await curl("-x", p.http, url)).stdout, "local secret\n");
    }
  },
});

Deno.test({
  name:
    "proxy: /proxy.pac needs the proxy credentials when they are set and lists only cluster names",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim({ username: "dev", password: "s3cret" });
    const status = (...args: string[]) =>
      curl("-o", "/dev/null", "-w", "%{http_code}", ...args).then((r) => r.stdout);
    assertEquals(await status(`http://${p.http}/proxy.pac`), "401");
    assertEquals(await status("-u", "dev:wrong", `http://${p.http}/proxy.pac`), "401");
    const pac = await curl("-u", "dev:s3cret", `http://${p.http}/proxy.pac`);
    assertMatch(pac.stdout, /function FindProxyForURL/);
    const suffixes = JSON.parse(/var suffixes = (\[.*\]);/.exec(pac.stdout)![1]);
    const namespaces = p.store.namespaces().map((ns) => `.${ns}`);
    assertEquals(suffixes, [".cluster.local", ".svc", ...namespaces]);
    // `k8stun proxy` has no VIP range: the PAC must not send 198.18.0.0/15 to the proxy.
    assert(!pac.stdout.includes("isInNet"), pac.stdout);
  },
});
