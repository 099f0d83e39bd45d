/**
 * The proxy auto-config file served at `/proxy.pac`: cluster names (the cluster domain and the
 * known namespaces, except those named like public TLDs) and, when there is one, the VIP range go
 * through k8stun, everything else DIRECT. It lists only what the proxy routes.
 */
import { isPublicTld } from "../names.ts";

/** What the PAC routes. */
export interface PacOptions {
  clusterDomain: string;
  namespaces: string[];
  /** The VIP range, when there is one (TUN mode); `k8stun proxy` alone has none. */
  vipCidr?: { base: string; mask: string };
  socks?: string;
  http?: string;
}

/** The PAC file's JavaScript. */
export function pacFile(options: PacOptions): string {
  const proxies = [
    options.socks ? `SOCKS5 ${options.socks}` : undefined,
    options.http ? `PROXY ${options.http}` : undefined,
  ].filter(Boolean).join("; ");
  const suffixes = [
    `.${options.clusterDomain}`,
    ".svc",
    ...options.namespaces.filter((ns) => !isPublicTld(ns)).map((ns) => `.${ns}`),
  ];
  const vip = options.vipCidr;
  const vipRule = vip
    ? `  if (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(host) && isInNet(host, ${
      JSON.stringify(vip.base)
    }, ${JSON.stringify(vip.mask)})) return ${JSON.stringify(proxies)};\n`
    : "";
  return `// k8stun: cluster names${
    vip ? " and the VIP range" : ""
  } through the proxy, everything else direct.
function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  var suffixes = ${JSON.stringify(suffixes)};
  for (var i = 0; i < suffixes.length; i++) {
    if (dnsDomainIs(host, suffixes[i])) return ${JSON.stringify(proxies)};
  }
${vipRule}  return "DIRECT";
}
`;
}
