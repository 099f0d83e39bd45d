/**
 * The text the kubelet writes on a port-forward's error stream (channel 1 in v4) when it cannot
 * connect to the pod's port (docs/portforward.md §5, §10), as a dial failure: a refusal when the
 * text says the port refused or has no listener, which lets the router try another ready pod.
 * The text is the far side's, so it is taken as one capped line (core/peer_text.ts).
 */
import { DialError } from "../../mod.ts";
import { oneLine } from "../../core/peer_text.ts";

export function kubeletFailure(bytes: Uint8Array): DialError {
  const text = oneLine(new TextDecoder().decode(bytes));
  const refused = /refused|forward not found|no forward found/i.test(text);
  return new DialError(refused ? "refused" : "error", text);
}
