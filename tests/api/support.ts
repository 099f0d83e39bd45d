/** Starts an API server over a fresh state for tests, and reads SSE streams. */
import { Metrics } from "../../core/api/metrics.ts";
import { type ApiServer, startApiServer } from "../../core/api/server.ts";
import { TunnelState } from "../../core/api/state.ts";
import { type ConnectionInfo, TelemetryFanout } from "../../core/telemetry.ts";

/** A running API with the sinks that feed it. */
export interface TestApi extends AsyncDisposable {
  server: ApiServer;
  state: TunnelState;
  metrics: Metrics;
  telemetry: TelemetryFanout;
}

/** Starts an API server on an ephemeral loopback port. */
export async function startTestApi(options: { token?: string; ringSize?: number } = {}): Promise<
  TestApi
> {
  const state = new TunnelState({ ringSize: options.ringSize });
  const metrics = new Metrics({
    vipsByType: () => {
      const counts: Record<string, number> = {};
      for (const v of state.vips()) counts[v.target.type] = (counts[v.target.type] ?? 0) + 1;
      return counts;
    },
  });
  const server = await startApiServer({
    port: 0,
    token: options.token,
    state,
    metrics,
    statsIntervalMs: 50,
    health: () => ({ status: "ok", tun: "up", dns_mode: "disabled", cluster: "synced" }),
  });
  return {
    server,
    state,
    metrics,
    telemetry: new TelemetryFanout(state, metrics),
    async [Symbol.asyncDispose]() {
      await server.close();
    },
  };
}

/** A connection record for telemetry. */
export function connection(id: number, vip: string, dstPort = 80): ConnectionInfo {
  return {
    id,
    vip,
    createdAt: new Date("2026-11-23T10:00:00.250Z"),
    srcIp: "198.18.0.1",
    srcPort: 40000 + id,
    dstPort,
  };
}

/** One parsed SSE message. */
export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
}

/** Reads SSE messages from a response body, one at a time. */
export class SseReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(response: Response) {
    this.#reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next message that is not a comment, within `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const end = this.#buffer.indexOf("\n\n");
      if (end !== -1) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const message: SseMessage = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = line.slice(0, colon) as keyof SseMessage;
          message[field] = line.slice(colon + 1).replace(/^ /, "");
        }
        if (Object.keys(message).length > 0) return message;
        continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error("timed out waiting for an SSE message");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        this.#reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("timed out waiting for SSE data")), remaining);
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error("SSE stream ended");
      this.#buffer += chunk.value;
    }
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}
