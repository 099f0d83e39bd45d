/**
 * The layering of docs/architecture.md, checked on every import in the repository: arrows point
 * down only. cli/ assembles everything and nothing imports it; plugins/ are written against
 * mod.ts and core/; core/ never reaches up into plugins/, the simulator or the CLI; ffi/ is the
 * bottom and uses of core only the pure wire formats and the device seam it implements; the wire
 * formats import nothing but each other, and the TCP state machine nothing that does I/O.
 */
import { assertEquals } from "../assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

/** Static, dynamic and Worker-URL imports of relative modules, resolved to repository paths. */
async function edges(): Promise<Edge[]> {
  const found: Edge[] = [];
  const pattern =
    /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^;"']*?\sfrom\s+)?["'](\.{1,2}\/[^"']+)["']|(?:import|new URL)\(\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (const file of await sources("")) {
    const text = await Deno.readTextFile(ROOT + file);
    for (const match of text.matchAll(pattern)) {
      const specifier = match[2] ?? match[3];
      const to = new URL(specifier, `file://${ROOT}${file}`).pathname.slice(ROOT.length);
      found.push({ from: file, to, typeOnly: match[1] !== undefined });
    }
  }
  return found;
}

async function sources(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(ROOT + (dir || "."))) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory) {
      if (!dir && !["cli", "core", "plugins", "ffi", "sim"].includes(entry.name)) continue;
      files.push(...await sources(path));
    } else if (entry.isFile && path.endsWith(".ts") && !path.endsWith(".d.ts")) {
      files.push(path);
    }
  }
  return files;
}

function under(path: string, ...folders: string[]): boolean {
  return folders.some((f) => path === f || path.startsWith(f + "/"));
}

/** Every import that breaks a rule, as `from → to (rule)`. */
function violations(all: Edge[]): string[] {
  const broken: string[] = [];
  const rule = (edge: Edge, ok: boolean, name: string) => {
    if (!ok) broken.push(`${edge.from} → ${edge.to} (${name})`);
  };
  for (const edge of all) {
    const { from, to } = edge;
    if (!under(from, "cli")) rule(edge, !under(to, "cli"), "only cli/ imports cli/");
    if (under(from, "core", "plugins", "ffi") || from === "mod.ts") {
      rule(edge, !under(to, "sim"), "the tunnel never imports the simulator");
    }
    if (under(from, "core") || from === "mod.ts") {
      rule(edge, !under(to, "plugins"), "core/ does not reach up into plugins/");
      rule(edge, !under(to, "ffi"), "core/ never imports an OS module (ffi/)");
    }
    if (under(from, "ffi")) {
      rule(
        edge,
        under(to, "ffi", "core/net/wire", "core/net/device") || edge.typeOnly,
        "ffi/ is the bottom: of core, only wire formats and the device seam it implements",
      );
    }
    if (under(from, "core/net/wire")) {
      rule(edge, under(to, "core/net/wire"), "wire formats import only wire formats");
    }
    if (under(from, "core/net/tcp")) {
      rule(
        edge,
        under(
          to,
          "core/net/tcp",
          "core/net/wire",
          "core/net/copy.ts",
          "core/stream/buffer_pool.ts",
        ) ||
          edge.typeOnly,
        "the TCP state machine imports no I/O: wire formats, copies and pooled memory",
      );
    }
  }
  return broken;
}

Deno.test("architecture: no import runs from a lower layer to a higher one", async () => {
  const all = await edges();
  // The scan itself must see the repository's imports, or an empty result proves nothing.
  const cliToCore = all.filter((e) => under(e.from, "cli") && under(e.to, "core")).length;
  assertEquals(cliToCore > 20, true, `only ${cliToCore} cli → core imports found`);
  assertEquals(violations(all), []);
});

Deno.test("architecture: the check notices an upward import", () => {
  const upward: Edge[] = [
    { from: "core/router.ts", to: "plugins/direct/mod.ts", typeOnly: false },
    { from: "ffi/linux/tun.ts", to: "core/log.ts", typeOnly: false },
    { from: "core/net/tcp/connection.ts", to: "core/net/packet_loop/worker.ts", typeOnly: false },
    { from: "core/net/wire/tcp.ts", to: "core/log.ts", typeOnly: true },
    { from: "plugins/dns/mod.ts", to: "cli/main.ts", typeOnly: false },
    { from: "core/dns/server.ts", to: "sim/mod.ts", typeOnly: false },
  ];
  assertEquals(violations(upward).length, upward.length);
});
