import { assert, assertEquals, assertRejects } from "../assert.ts";
import { Lab, labUnavailable } from "./lab.ts";

const ignore = labUnavailable() !== undefined;

async function hostState(): Promise<string> {
  const routes = await new Deno.Command("ip", { args: ["-j", "route"], stdout: "piped" }).output();
  return new TextDecoder().decode(routes.stdout) + (await Deno.readTextFile("/etc/resolv.conf"));
}

Deno.test({
  name: "lab: a namespace isolates routes and /etc/resolv.conf from the host",
  ignore,
  async fn() {
    const before = await hostState();
    await using lab = await Lab.create({ resolvConf: "nameserver 192.0.2.53\n" });
    const resolv = await lab.run("cat", ["/etc/resolv.conf"]);
    assertEquals(resolv.stdout, "nameserver 192.0.2.53\n");
    const added = await lab.sh("ip route add blackhole 203.0.113.0/24 && ip route");
    assertEquals(added.code, 0, added.stderr);
    assert(added.stdout.includes("203.0.113.0/24"));
    const write = await lab.sh("echo 'nameserver 192.0.2.99' > /etc/resolv.conf");
    assertEquals(write.code, 0);
    assertEquals(await hostState(), before, "the host's routes and resolv.conf are unchanged");
  },
});

Deno.test({
  name: "lab: clients run inside and see servers started inside",
  ignore,
  async fn() {
    await using lab = await Lab.create();
    const server = lab.spawn("sh", [
      "-c",
      "while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nfrom-the-lab' | nc -l -N 127.0.0.1 8088; done",
    ]);
    await lab.sh(
      "for i in $(seq 1 50); do nc -z 127.0.0.1 8088 && exit 0; sleep 0.1; done; exit 1",
    );
    void server;
    const curl = await lab.run("curl", ["-s", "-m", "5", "http://127.0.0.1:8088/"]);
    assertEquals(curl.stdout, "from-the-lab");
    const outside = await new Deno.Command("sh", { args: ["-c", "nc -z -w 1 127.0.0.1 8088"] })
      .output();
    assert(!outside.success, "the lab's loopback is not the host's");
  },
});

Deno.test({
  name: "lab: a failing test body still leaves no namespace or process behind",
  ignore,
  async fn() {
    let name = "";
    let dir = "";
    let pid = 0;
    await assertRejects(async () => {
      await using lab = await Lab.create();
      name = lab.name;
      dir = lab.dir;
      pid = lab.spawn("sleep", ["300"]).pid;
      throw new Error("the test body failed");
    }, /the test body failed/);
    const netns = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" })
      .output();
    assert(!new TextDecoder().decode(netns.stdout).includes(name), "namespace deleted");
    let alive = true;
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      alive = false;
    }
    assert(!alive, "process killed");
    await assertRejects(() => Deno.stat(`/etc/netns/${name}`));
    await assertRejects(() => Deno.stat(dir));
  },
});
