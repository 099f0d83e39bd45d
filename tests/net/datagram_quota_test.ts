import { assert, assertEquals } from "../assert.ts";
import { DatagramQuota } from "../../core/net/packet_loop/datagram_quota.ts";

Deno.test("datagram quota: admits up to its limit of unread datagrams, and again as the reader passes them — across the ring's u32 wrap", () => {
  const quota = new DatagramQuota(3);
  // Positions are free-running u32 byte counts; these straddle 2^32.
  let written = 0xffff_ff80 | 0;
  const publish = () => {
    written = (written + 0x40) | 0;
    quota.published(written);
    return written;
  };
  const consumedBefore = written;
  const ends: number[] = [];
  for (let i = 0; i < 3; i++) {
    assert(quota.admits(consumedBefore), `datagram ${i}`);
    ends.push(publish());
  }
  assert(!quota.admits(consumedBefore), "a fourth waits for the reader");
  assertEquals(quota.waiting, 3);
  assert(ends[2] >>> 0 < 0x100, "the third ends past the wrap");
  assert(quota.admits(ends[0]), "the first was read");
  assertEquals(quota.waiting, 2);
  publish();
  assert(!quota.admits(ends[0]));
  assert(quota.admits(written), "all read");
  assertEquals(quota.waiting, 0);
});
