/**
 * What talking to the API server as a kubeconfig context takes: its cluster (server, CA, TLS
 * name, proxy) and its user's credentials, in the forms kubectl accepts —
 * - a bearer `token` or a `tokenFile` (read again for every connection, so a rotated file is
 *   picked up), `username`/`password` (basic auth), a client certificate and key (inline
 *   `-data`, base64, or files);
 * - a credential plugin (`exec`, see exec_credential.ts), whose token or certificate is cached
 *   until it expires, and forgotten when the server answers 401;
 * - the older `auth-provider`s: `oidc` (its `id-token`, refreshed with the `refresh-token` at the
 *   issuer's token endpoint once expired), and the `access-token` a `gcp` or `azure` login left
 *   (both providers were removed from kubectl in 1.26: an expired one says which plugin replaced
 *   it);
 * - impersonation (`as`, `as-uid`, `as-groups`, `as-user-extra`: the `Impersonate-*` headers).
 * Credentials are built again for each connection (each port-forward session, list and watch),
 * so expiring tokens refresh without a restart.
 */
import {
  type ClusterEntry,
  type ContextEntry,
  type KubeconfigDocument,
  KubeconfigFormatError,
  parseKubeconfig,
  type UserEntry,
} from "./kubeconfig_document.ts";
import {
  type ExecClusterInfo,
  type ExecConfig,
  ExecCredentialError,
  ExecCredentials,
} from "./exec_credential.ts";
import { readTextUpTo } from "../stream/capped_text.ts";
import { readOwnFile, type ReadUserFile } from "../user_files.ts";

/** Headers and client certificate one connection to the API server presents. */
export interface ApiCredentials {
  /** `Authorization` and `Impersonate-*` (a group header may repeat: an array). */
  headers: Record<string, string | string[]>;
  /** The client certificate chain and key, PEM. */
  cert?: string;
  key?: string;
}

/** A credential that cannot be had; one line a user can act on. */
export class CredentialError extends Error {}

/** The cluster a context points at, with its name. */
export type NamedCluster = ClusterEntry & { name: string };

/** The key under `extensions` whose value a credential plugin gets as `spec.cluster.config`. */
const EXEC_EXTENSION = "client.authentication.k8s.io/exec";

/** How long before its expiry a token counts as expired (clock skew, the request's own time). */
const EXPIRY_MARGIN_MS = 10_000;

/** See the module comment. */
export class ApiAccess {
  /** The context's name, its cluster, its user's name and entry, its default namespace. */
  readonly context: string;
  readonly cluster: NamedCluster;
  readonly userName: string;
  readonly user: UserEntry;
  readonly namespace: string;
  /** How the files the kubeconfig names are read (as the invoking user: core/user_files.ts). */
  readonly readFile: ReadUserFile;
  readonly #plugins: ExecCredentials;
  /** An OIDC id-token refreshed in this process (the kubeconfig is never written). */
  #oidc?: { idToken: string; refreshToken?: string };
  /** The refresh under way: concurrent connections share it (a refresh-token may be single-use). */
  #oidcRefresh?: Promise<{ idToken: string; refreshToken?: string }>;

  constructor(
    selection: {
      context: string;
      cluster: NamedCluster;
      userName: string;
      user: UserEntry;
      namespace?: string;
      readFile?: ReadUserFile;
    },
    plugins: ExecCredentials = new ExecCredentials(),
  ) {
    this.context = selection.context;
    this.cluster = selection.cluster;
    this.userName = selection.userName;
    this.user = selection.user;
    this.namespace = selection.namespace || "default";
    this.readFile = selection.readFile ?? readOwnFile;
    this.#plugins = plugins;
  }

  /**
   * The access `context` (default: the current context) of `document` gives. Throws
   * {@link KubeconfigFormatError} naming what is missing.
   */
  static of(
    document: KubeconfigDocument,
    context?: string,
    readFile: ReadUserFile = readOwnFile,
  ): ApiAccess {
    const name = context ?? document.currentContext;
    const entry: ContextEntry | undefined = name ? document.contexts.get(name) : undefined;
    if (!name || !entry) {
      const known = [...document.contexts.keys()].join(", ") || "none";
      throw new KubeconfigFormatError(`no context "${name ?? ""}" (contexts: ${known})`);
    }
    const cluster = document.clusters.get(entry.cluster);
    if (!cluster) {
      throw new KubeconfigFormatError(
        `context "${name}" names cluster "${entry.cluster}", which is not defined`,
      );
    }
    const userName = entry.user ?? "";
    return new ApiAccess({
      context: name,
      cluster: { ...cluster, name: entry.cluster },
      userName,
      user: document.users.get(userName) ?? {},
      namespace: entry.namespace,
      readFile,
    });
  }

  /** The access a kubeconfig's text gives (tests, the simulator). */
  static fromText(text: string, context?: string): ApiAccess {
    return ApiAccess.of(parseKubeconfig(text), context);
  }

  /** This access with another user entry (e.g. its plugin run as the invoking user). */
  withUser(user: UserEntry): ApiAccess {
    return new ApiAccess({ ...this, user }, this.#plugins);
  }

  get server(): string {
    return this.cluster.server;
  }

  /** The cluster's CA certificates (PEM), when the kubeconfig names any. */
  certificateAuthority(): string | undefined {
    return pemOf(
      this.cluster["certificate-authority-data"],
      this.cluster["certificate-authority"],
      `cluster "${this.cluster.name}" certificate-authority`,
      this.readFile,
    );
  }

  /** The credentials for one more connection; see the module comment. */
  async credentials(): Promise<ApiCredentials> {
    const user = this.user;
    const headers: ApiCredentials["headers"] = {};
    let cert = pemOf(
      user["client-certificate-data"],
      user["client-certificate"],
      `user "${this.userName}" client-certificate`,
      this.readFile,
    );
    let key = pemOf(
      user["client-key-data"],
      user["client-key"],
      `user "${this.userName}" client-key`,
      this.readFile,
    );
    if ((cert === undefined) !== (key === undefined)) {
      throw new CredentialError(
        `user "${this.userName}" has a client ${
          cert ? "certificate without its key" : "key without its certificate"
        }`,
      );
    }
    const exec = this.#execConfig();
    // A token written in the kubeconfig wins: the plugin or provider would only be overruled.
    let bearer = user.token ??
      (user.tokenFile ? readTokenFile(user.tokenFile, this.readFile) : undefined);
    if (!bearer && exec) {
      const status = await this.#plugins.get(this.userName, exec, this.#execClusterInfo(exec))
        .catch((error) => {
          // One kind for every credential its user must fix (sync.ts words them as such).
          throw error instanceof ExecCredentialError ? new CredentialError(error.message) : error;
        });
      bearer = status.token;
      if (status.clientCertificateData && status.clientKeyData) {
        cert = status.clientCertificateData;
        key = status.clientKeyData;
      }
    } else if (!bearer && user["auth-provider"]) {
      bearer = await this.#authProviderToken(user["auth-provider"]);
    }
    if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
    else if (user.username !== undefined || user.password !== undefined) {
      const pair = `${user.username ?? ""}:${user.password ?? ""}`;
      headers["Authorization"] = `Basic ${base64Utf8(pair)}`;
    }
    if (user.as) headers["Impersonate-User"] = user.as;
    if (user["as-uid"]) headers["Impersonate-Uid"] = user["as-uid"];
    if (user["as-groups"]?.length) headers["Impersonate-Group"] = user["as-groups"];
    for (const [name, values] of Object.entries(user["as-user-extra"] ?? {})) {
      headers[`Impersonate-Extra-${headerKeyEscape(name)}`] = values;
    }
    return { headers, ...(cert && key ? { cert, key } : {}) };
  }

  /** The server refused our credentials (401): a cached plugin credential is not reused. */
  rejected(): void {
    this.#plugins.invalidate(this.userName);
    // The refused id-token goes; the refresh-token stays: the issuer may have rotated it, and the
    // kubeconfig's own one is then spent.
    if (this.#oidc) this.#oidc = { idToken: "", refreshToken: this.#oidc.refreshToken };
  }

  /** `user.exec`, or the nonstandard `auth-provider.config.exec` some kubeconfigs carry. */
  #execConfig(): ExecConfig | undefined {
    return this.user.exec ??
      (this.user["auth-provider"]?.config?.exec as ExecConfig | undefined);
  }

  #execClusterInfo(exec: ExecConfig): ExecClusterInfo | undefined {
    if (!exec.provideClusterInfo) return undefined;
    const cluster = this.cluster;
    const ca = this.certificateAuthority();
    const config = cluster.extensions?.find((e) => e.name === EXEC_EXTENSION)?.extension;
    return {
      server: cluster.server,
      ...(cluster["tls-server-name"] ? { "tls-server-name": cluster["tls-server-name"] } : {}),
      ...(cluster["insecure-skip-tls-verify"] ? { "insecure-skip-tls-verify": true } : {}),
      ...(ca ? { "certificate-authority-data": base64Utf8(ca) } : {}),
      ...(cluster["proxy-url"] ? { "proxy-url": cluster["proxy-url"] } : {}),
      ...(config !== undefined ? { config } : {}),
    };
  }

  async #authProviderToken(
    provider: NonNullable<UserEntry["auth-provider"]>,
  ): Promise<string | undefined> {
    const config = provider.config ?? {};
    const text = (key: string) => typeof config[key] === "string" ? config[key] as string : "";
    if (provider.name === "oidc") {
      const idToken = this.#oidc?.idToken ?? text("id-token");
      if (idToken && !jwtExpired(idToken)) return idToken;
      const refreshToken = this.#oidc?.refreshToken ?? text("refresh-token");
      if (!refreshToken || !text("idp-issuer-url")) {
        throw new CredentialError(
          `user "${this.userName}": the OIDC id-token has expired and there is no refresh-token ` +
            "to renew it; log in again (e.g. kubectl oidc-login)",
        );
      }
      this.#oidcRefresh ??= refreshOidc(text("idp-issuer-url"), refreshToken, {
        clientId: text("client-id"),
        clientSecret: text("client-secret"),
        caPem: pemOf(
          text("idp-certificate-authority-data") || undefined,
          text("idp-certificate-authority") || undefined,
          `user "${this.userName}" idp-certificate-authority`,
          this.readFile,
        ),
      }).then((tokens) => {
        this.#oidc = tokens;
        return tokens;
      }, (error) => {
        throw new CredentialError(
          `user "${this.userName}": renewing the OIDC id-token at ${
            text("idp-issuer-url")
          } failed: ${error instanceof Error ? error.message : error}`,
        );
      }).finally(() => {
        this.#oidcRefresh = undefined;
      });
      return (await this.#oidcRefresh).idToken;
    }
    if (provider.name === "gcp" || provider.name === "azure") {
      const token = text("access-token");
      // gcp's `expiry` is RFC 3339; azure's `expires-on` is seconds since the epoch.
      const when = text("expiry") || text("expires-on");
      const expiry = /^\d+$/.test(when) ? Number(when) * 1000 : Date.parse(when);
      if (token && !(expiry < Date.now() + EXPIRY_MARGIN_MS)) return token;
      const plugin = provider.name === "gcp" ? "gke-gcloud-auth-plugin" : "kubelogin";
      throw new CredentialError(
        `user "${this.userName}": the ${provider.name} auth-provider's token has expired, and ` +
          `kubectl no longer renews it (removed in 1.26): switch the kubeconfig to ${plugin}`,
      );
    }
    throw new CredentialError(
      `user "${this.userName}": auth-provider "${provider.name}" is not supported; use an exec ` +
        "credential plugin",
    );
  }
}

/** PEM from a base64 `-data` field, or else from a file; undefined when neither is set. */
function pemOf(
  data: string | undefined,
  file: string | undefined,
  what: string,
  readFile: ReadUserFile,
) {
  if (data) {
    try {
      return new TextDecoder().decode(Uint8Array.from(atob(data.trim()), (c) => c.charCodeAt(0)));
    } catch {
      throw new CredentialError(`${what}-data is not base64`);
    }
  }
  if (!file) return undefined;
  try {
    return readFile(file);
  } catch (error) {
    throw new CredentialError(`cannot read ${what} ${file}: ${(error as Error).message}`);
  }
}

function readTokenFile(file: string, readFile: ReadUserFile): string {
  try {
    return readFile(file).trim();
  } catch (error) {
    throw new CredentialError(`cannot read tokenFile ${file}: ${(error as Error).message}`);
  }
}

/** A JWT whose `exp` is past (or within the margin); a token that is no JWT never expires. */
export function jwtExpired(token: string, now = Date.now()): boolean {
  const payload = token.split(".")[1];
  if (!payload) return false;
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.exp === "number" && claims.exp * 1000 < now + EXPIRY_MARGIN_MS;
  } catch {
    return false;
  }
}

/**
 * Renews an OIDC id-token with a refresh token (OpenID Connect Core 1.0 §12): the issuer's
 * discovery document names its token endpoint, which answers a `refresh_token` grant.
 */
async function refreshOidc(
  issuer: string,
  refreshToken: string,
  client: { clientId: string; clientSecret: string; caPem?: string },
): Promise<{ idToken: string; refreshToken?: string }> {
  const http = client.caPem ? Deno.createHttpClient({ caCerts: [client.caPem] }) : undefined;
  try {
    const discovery = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, {
      client: http,
      signal: AbortSignal.timeout(10_000),
    });
    if (!discovery.ok) throw new Error(`discovery answered ${discovery.status}`);
    const { token_endpoint: endpoint } = await jsonAnswer(discovery, "the discovery");
    if (typeof endpoint !== "string") throw new Error("the discovery names no token_endpoint");
    const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken });
    if (client.clientId) body.set("client_id", client.clientId);
    if (client.clientSecret) body.set("client_secret", client.clientSecret);
    const answer = await fetch(endpoint, {
      method: "POST",
      body,
      client: http,
      signal: AbortSignal.timeout(10_000),
    });
    if (!answer.ok) throw new Error(`the token endpoint answered ${answer.status}`);
    const tokens = await jsonAnswer(answer, "the token endpoint");
    if (typeof tokens.id_token !== "string") throw new Error("the answer has no id_token");
    return { idToken: tokens.id_token, refreshToken: tokens.refresh_token ?? refreshToken };
  } finally {
    http?.close();
  }
}

/** The most of an issuer's answer read: a discovery document or tokens are a few KiB. */
const MAX_OIDC_ANSWER = 1024 * 1024;

/**
 * The JSON object `response` carries, read up to {@link MAX_OIDC_ANSWER} bytes: a longer answer
 * fails the refresh rather than filling memory for the whole of its time limit.
 */
// deno-lint-ignore no-explicit-any
async function jsonAnswer(response: Response, what: string): Promise<any> {
  const text = await readTextUpTo(response.body, MAX_OIDC_ANSWER);
  if (text === undefined) {
    throw new Error(`${what} answered more than ${MAX_OIDC_ANSWER >> 20} MiB`);
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${what} answered something that is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null) {
    throw new Error(`${what} answered JSON that is not an object`);
  }
  return parsed;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/**
 * A header name's escape as kubectl writes an impersonated user's extra keys: bytes that may stand
 * in a header name (an RFC 9110 §5.6.2 token) are kept, except `%`; every other UTF-8 byte is
 * `%XX` (RFC 3986 §2.1), which the API server decodes.
 */
export function headerKeyEscape(key: string): string {
  let escaped = "";
  for (const byte of new TextEncoder().encode(key)) {
    const char = String.fromCharCode(byte);
    escaped += byte < 0x80 && /[A-Za-z0-9!#$&'*+\-.^_`|~]/.test(char)
      ? char
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return escaped;
}

/** Base64 of the UTF-8 bytes of `text` (btoa alone takes only Latin-1, and encodes it as such). */
function base64Utf8(text: string): string {
  const bytes = utf8(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
