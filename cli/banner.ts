/** The "ready" banner: what k8stun routes now, like the Rust k8stun's session output. */
import type { Tunnel } from "./tunnel.ts";

/** Prints the VIP table and the ready line. */
export function printBanner(tunnel: Tunnel, namespaces: string[]): void {
  const entries = tunnel.vips.entries().sort((a, b) =>
    a.vip.localeCompare(b.vip, "en", { numeric: true })
  );
  if (entries.length > 0) {
    console.log("");
    console.log("VIP              TARGET");
    for (const e of entries) {
      console.log(`${e.vip.padEnd(16)} ${e.target.type} ${e.target.namespace}/${e.target.name}`);
    }
  }
  console.log("");
  console.log(
    `k8stun is ready on ${tunnel.tunName} (namespaces ${
      namespaces.join(", ")
    }, dns ${tunnel.dnsMode}${tunnel.dnsNote ? ` because ${tunnel.dnsNote}` : ""}). ` +
      "Press Ctrl-C to stop.",
  );
}
