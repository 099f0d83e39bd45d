/**
 * The live dashboard in headless Chromium, against `k8stun demo --http` in a lab: a VIP row
 * appears and its connection count changes while the test makes requests through the TUN.
 * Chromium runs inside the lab namespace (through a wrapper), so it reaches the lab's loopback.
 */
import { chromium } from "playwright-core";
import { assert } from "../assert.ts";
import { browserUnavailable, CHROMIUM, CHROMIUM_ARGS } from "../api/browser.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const reason = labUnavailable() ?? await browserUnavailable();

Deno.test({
  name: "e2e: the dashboard shows a VIP row and its connection count changing with traffic",
  ignore: reason !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\n" });
    const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo", "--http", "8791"]);
    await k8stun.waitForOutput(/k8stun is ready/, 60_000);
    const wrapper = `${lab.dir}/chromium.sh`;
    await Deno.writeTextFile(
      wrapper,
      `#!/bin/sh\nexec ip netns exec ${lab.name} ${CHROMIUM} "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const browser = await chromium.launch({
      executablePath: wrapper,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    try {
      const page = await browser.newPage();
      await page.goto("http://127.0.0.1:8791/");
      const row = 'tr[data-vip="198.18.0.2"]';
      await page.waitForSelector(row, { timeout: 10_000 });
      const total = async () => Number(await page.textContent(`${row} td.total`));
      const before = await total();
      for (let i = 0; i < 3; i++) await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
      // A string expression: it runs in the page, where `document` exists.
      await page.waitForFunction(
        `Number(document.querySelector('${row} td.total')?.textContent) >= ${before + 3}`,
        undefined,
        { timeout: 10_000 },
      );
      assert((await total()) >= before + 3);
      // When the connections end, the active count returns to 0 and the byte counters show them.
      await page.waitForFunction(
        `document.querySelector('${row} td.active')?.textContent === "0" &&
         !document.querySelector('${row}').textContent.includes("0 B0 B")`,
        undefined,
        { timeout: 10_000 },
      );
      await Deno.mkdir("test-artifacts", { recursive: true });
      await page.screenshot({ path: "test-artifacts/dashboard.png" });
    } finally {
      await browser.close();
    }
  },
});
