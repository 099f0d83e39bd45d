/** The stack's table of connections by four-tuple, keyed by numbers (core/net/flow_table.ts). */
import { assertEquals } from "../assert.ts";
import { FlowTable } from "../../core/net/flow_table.ts";
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";

const APP = parseIpv4Address("198.18.0.1");
const VIP = parseIpv4Address("198.18.0.2");
const flow = (srcPort: number, dst = VIP, dstPort = 80, src = APP) => ({
  remote: { address: src, port: srcPort },
  local: { address: dst, port: dstPort },
});

Deno.test("flow table: tuples that differ in any one field are different entries", () => {
  const table = new FlowTable<ReturnType<typeof flow>>();
  const high = parseIpv4Address("255.255.255.254");
  const entries = [
    flow(1000),
    flow(1001),
    flow(1000, high),
    flow(1000, VIP, 81),
    flow(1000, VIP, 80, high),
  ];
  for (const entry of entries) table.set(entry);
  for (const entry of entries) {
    const { remote, local } = entry;
    assertEquals(table.get(remote.address, remote.port, local.address, local.port), entry);
  }
  assertEquals(table.get(APP, 1002, VIP, 80), undefined);
});

Deno.test("flow table: deleting a replaced entry leaves its successor in place", () => {
  const table = new FlowTable<ReturnType<typeof flow>>();
  const old = flow(2000);
  const successor = flow(2000);
  table.set(old);
  table.set(successor);
  table.delete(old);
  assertEquals(table.get(APP, 2000, VIP, 80), successor);
  table.delete(successor);
  assertEquals(table.get(APP, 2000, VIP, 80), undefined);
});
