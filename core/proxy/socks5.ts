/**
 * SOCKS5 (RFC 1928) with optional username/password authentication (RFC 1929): CONNECT with a
 * domain name (resolved by k8stun: `socks5h`), an IPv4 address (VIP, ClusterIP, pod IP), reply
 * codes that let clients print useful errors. BIND and UDP ASSOCIATE answer "command not
 * supported"; IPv6 destinations "address type not supported".
 */
import type { DialFailure, FlowRequest } from "../../mod.ts";
import type { BufferedConn } from "../stream/buffered_conn.ts";

/** RFC 1928 §6 reply codes. */
export const SocksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** Maps a dial failure to the reply a SOCKS client understands. */
export function replyFor(reason: DialFailure): number {
  switch (reason) {
    case "refused":
      return SocksReply.connectionRefused;
    case "unreachable":
    case "timeout":
      return SocksReply.hostUnreachable;
    case "forbidden":
      return SocksReply.notAllowed;
    default:
      return SocksReply.generalFailure;
  }
}

/**
 * What a proxy's failure reply means to us as a client (the SOCKS5-upstream dialer): the reverse
 * of {@link replyFor}. 0xff is no reply code but a greeting the proxy turned down (no acceptable
 * method, §3): not allowed.
 */
export function failureOfReply(reply: number): DialFailure {
  switch (reply) {
    case SocksReply.notAllowed:
    case 0xff:
      return "forbidden";
    case SocksReply.networkUnreachable:
    case SocksReply.hostUnreachable:
      return "unreachable";
    case SocksReply.connectionRefused:
      return "refused";
    case 0x06: // TTL expired
      return "timeout";
    default:
      return "error";
  }
}

/** What the handshake asks for. */
export type SocksRequest =
  | { ok: true; flow: FlowRequest; reply(code: number): Promise<void> }
  | { ok: false };

/** Credentials the proxy requires, if any. */
export interface ProxyAuth {
  username: string;
  password: string;
}

/**
 * Runs the handshake on a connection whose first byte was 0x05. Bad input gets the right reply
 * or a closed socket; it never throws past the caller.
 */
export async function socks5Handshake(
  reader: BufferedConn,
  auth: ProxyAuth | undefined,
  source: { address: string; port: number },
): Promise<SocksRequest> {
  const conn = reader.conn;
  const [version, count] = await reader.readExactly(2);
  if (version !== 5 || count === 0) return { ok: false };
  const methods = await reader.readExactly(count);
  const wanted = auth ? 0x02 : 0x00;
  if (!methods.includes(wanted)) {
    await conn.write(new Uint8Array([5, 0xff])); // no acceptable method
    return { ok: false };
  }
  await conn.write(new Uint8Array([5, wanted]));
  if (auth) {
    const [subVersion, userLength] = await reader.readExactly(2);
    const user = new TextDecoder().decode(await reader.readExactly(userLength));
    const [passwordLength] = await reader.readExactly(1);
    const password = new TextDecoder().decode(await reader.readExactly(passwordLength));
    const good = subVersion === 1 && user === auth.username && password === auth.password;
    await conn.write(new Uint8Array([1, good ? 0 : 1]));
    if (!good) return { ok: false };
  }
  const [v, command, , addressType] = await reader.readExactly(4);
  const reply = async (code: number) => {
    await conn.write(new Uint8Array([5, code, 0, 1, 0, 0, 0, 0, 0, 0]));
  };
  if (v !== 5) return { ok: false };
  let name: string | undefined;
  let address: string | undefined;
  if (addressType === 1) address = [...await reader.readExactly(4)].join(".");
  else if (addressType === 3) {
    const [length] = await reader.readExactly(1);
    name = new TextDecoder().decode(await reader.readExactly(length));
  } else if (addressType === 4) {
    await reader.readExactly(16 + 2);
    await reply(SocksReply.addressTypeNotSupported);
    return { ok: false };
  } else {
    await reply(SocksReply.addressTypeNotSupported);
    return { ok: false };
  }
  const portBytes = await reader.readExactly(2);
  const port = (portBytes[0] << 8) | portBytes[1];
  if (command !== 1) {
    await reply(SocksReply.commandNotSupported);
    return { ok: false };
  }
  return {
    ok: true,
    flow: { name, address, port, protocol: "tcp", front: "socks", source },
    reply,
  };
}
