/**
 * Telemetry: the events the data plane, router and VIP pool report, consumed by the HTTP API,
 * metrics and logs. Producers depend only on {@link TelemetrySink}; {@link NoTelemetry} is the
 * default when nothing listens.
 */

/** A VIP's target as the API shows it (`type` mirrors the Rust k8stun's JSON). */
export interface VipTarget {
  type: "service" | "pod";
  name: string;
  namespace: string;
}

/** One connection through a VIP or a proxy front. */
export interface ConnectionInfo {
  id: number;
  /** VIP (TUN mode) or the address/name the proxy client asked for. */
  vip: string;
  createdAt: Date;
  srcIp: string;
  srcPort: number;
  dstPort: number;
}

/** Events producers report. Byte counts are deltas since the last report for that connection. */
export type TelemetryEvent =
  | { type: "vip_allocated"; vip: string; target: VipTarget; at: Date }
  | { type: "vip_removed"; vip: string; target: VipTarget }
  | { type: "connection_opened"; connection: ConnectionInfo }
  | {
    type: "connection_closed";
    connection: ConnectionInfo;
    error?: string;
    /** One end reset the connection (a normal TCP ending, e.g. a server closing unread data). */
    reset?: boolean;
  }
  | { type: "bytes"; connectionId: number; vip: string; sent: number; received: number }
  | { type: "dial_error"; reason: string; target: string; message: string }
  | { type: "dns_query"; kind: "cluster" | "upstream"; rcode: string; seconds?: number }
  | { type: "portforward_dial"; seconds: number; reused: boolean }
  | { type: "watch_restart"; resource: string }
  /** An object from the API server failed the shape check and was left out (object_shape.ts). */
  | { type: "object_refused"; resource: string }
  | { type: "cluster_state"; state: "syncing" | "synced" | "unreachable"; error?: string };

/** Receives telemetry. Implementations must be cheap: producers call it on hot-ish paths. */
export interface TelemetrySink {
  emit(event: TelemetryEvent): void;
}

/** A sink that drops everything. */
export const NoTelemetry: TelemetrySink = { emit() {} };

/** Fans telemetry out to several sinks (e.g. the API state and the metrics registry). */
export class TelemetryFanout implements TelemetrySink {
  readonly #sinks: TelemetrySink[];

  constructor(...sinks: TelemetrySink[]) {
    this.#sinks = sinks;
  }

  emit(event: TelemetryEvent): void {
    for (const sink of this.#sinks) sink.emit(event);
  }
}
