/** The DNS port (RFC 1035 §4.2.1). */
export const DNS_PORT = 53;

/**
 * Whether k8stun's DNS server drops `message` without an answer: too short for a header (RFC 1035
 * §4.1.1), or a response (QR set) — a server never answers one, whatever it holds, or two servers
 * could answer each other forever. The packet loop drops these itself, so a flood of them costs
 * the main thread nothing.
 */
export function goesUnanswered(message: Uint8Array): boolean {
  return message.length < 12 || (message[2] & 0x80) !== 0;
}
