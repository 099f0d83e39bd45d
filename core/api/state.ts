/**
 * The tunnel's live state as the HTTP API shows it: the VIP table with per-VIP statistics and
 * active connections, and a numbered event stream. It is a {@link TelemetrySink}: producers report
 * telemetry, this turns it into the Rust k8stun's JSON shapes (docs/compatibility.md §2) plus the
 * additions of docs/compatibility.md §2 (event ids, a replay ring, periodic statistics).
 */
import type { ConnectionInfo, TelemetryEvent, TelemetrySink, VipTarget } from "../telemetry.ts";

/** A connection as `/vips` and `/events` show it (docs/compatibility.md §2). */
export interface ConnectionJson {
  created_at: string;
  src_ip: string;
  src_port: number;
  dst_port: number;
}

/** Per-VIP counters (docs/compatibility.md §2). */
export interface VipStatsJson {
  active_connections: number;
  total_connections: number;
  /** App → cluster. */
  bytes_sent: number;
  /** Cluster → app. */
  bytes_received: number;
}

/** One row of `/vips` (docs/compatibility.md §2; `ports` and `last_activity` are additive, docs/compatibility.md §2). */
export interface VipInfoJson {
  vip: string;
  target: VipTarget;
  allocated_at: string;
  stats: VipStatsJson;
  connections: ConnectionJson[];
  ports: number[];
  last_activity: string | null;
}

/** Events of `/events` (docs/compatibility.md §2, plus `vip_stats` and `dial_error`). */
export type ApiEvent =
  | { type: "snapshot"; vips: VipInfoJson[] }
  | { type: "vip_allocated"; vip: string; target: VipTarget }
  | { type: "vip_removed"; vip: string; target: VipTarget }
  | {
    type: "connection_changed";
    vip: string;
    event_type: "connected" | "disconnected";
    connection: ConnectionJson;
    active_connections: number;
    total_connections: number;
  }
  | { type: "vip_stats"; vip: string; stats: VipStatsJson }
  | { type: "dial_error"; target: string; reason: string; message: string; at: string }
  | {
    type: "cluster_state";
    state: "syncing" | "synced" | "unreachable";
    error?: string;
    at: string;
  };

/** An event with its stream id. */
export interface NumberedEvent {
  id: number;
  event: ApiEvent;
}

interface VipRow {
  vip: string;
  target: VipTarget;
  allocatedAt: Date;
  stats: VipStatsJson;
  connections: Map<number, ConnectionInfo>;
  ports: Set<number>;
  lastActivity: Date | null;
  statsDirty: boolean;
}

/** Options for {@link TunnelState}. */
export interface TunnelStateOptions {
  /** How many recent events are kept for `Last-Event-ID` replay (default 1024). */
  ringSize?: number;
  /** How many recent dial errors `/healthz` and the dashboard show (default 20). */
  recentErrors?: number;
}

/** Live state and event stream. */
export class TunnelState implements TelemetrySink {
  readonly #rows = new Map<string, VipRow>();
  readonly #ring: NumberedEvent[] = [];
  readonly #ringSize: number;
  readonly #subscribers = new Set<(event: NumberedEvent) => void>();
  readonly #errors: Extract<ApiEvent, { type: "dial_error" }>[] = [];
  readonly #errorLimit: number;
  #lastId = 0;

  constructor(options: TunnelStateOptions = {}) {
    this.#ringSize = options.ringSize ?? 1024;
    this.#errorLimit = options.recentErrors ?? 20;
  }

  /** Id of the newest event (0 before any). */
  get lastEventId(): number {
    return this.#lastId;
  }

  emit(event: TelemetryEvent): void {
    switch (event.type) {
      case "vip_allocated":
        return this.#vipAllocated(event.vip, event.target, event.at);
      case "vip_removed":
        return this.#vipRemoved(event.vip);
      case "connection_opened":
        return this.#connectionOpened(event.connection);
      case "connection_closed":
        return this.#connectionClosed(event.connection);
      case "bytes":
        return this.#bytes(event.vip, event.sent, event.received);
      case "dial_error": {
        const error = {
          type: "dial_error" as const,
          target: event.target,
          reason: event.reason,
          message: event.message,
          at: new Date().toISOString(),
        };
        this.#errors.push(error);
        if (this.#errors.length > this.#errorLimit) this.#errors.shift();
        return this.#publish(error);
      }
      case "cluster_state":
        return this.#publish({
          type: "cluster_state",
          state: event.state,
          ...(event.error ? { error: event.error } : {}),
          at: new Date().toISOString(),
        });
    }
  }

  /** The `/vips` rows, sorted by VIP (docs/compatibility.md §2). */
  vips(): VipInfoJson[] {
    return [...this.#rows.values()].sort((a, b) => compareIpv4(a.vip, b.vip)).map(rowJson);
  }

  /** Recent dial errors, oldest first. */
  recentErrors(): Extract<ApiEvent, { type: "dial_error" }>[] {
    return [...this.#errors];
  }

  /**
   * Subscribes to events. Subscription happens before the snapshot is taken, so nothing falls in
   * between (docs/compatibility.md §3 D13). With `lastEventId` still in the ring, the missed events are replayed
   * instead of a snapshot; otherwise the first event is a snapshot whose id is the last event it
   * reflects.
   */
  subscribe(
    listener: (event: NumberedEvent) => void,
    lastEventId?: number,
  ): () => void {
    this.#subscribers.add(listener);
    const oldest = this.#ring[0]?.id ?? this.#lastId + 1;
    const canReplay = lastEventId !== undefined && lastEventId <= this.#lastId &&
      lastEventId >= oldest - 1;
    if (canReplay) {
      for (const numbered of this.#ring) if (numbered.id > lastEventId) listener(numbered);
    } else {
      listener({ id: this.#lastId, event: { type: "snapshot", vips: this.vips() } });
    }
    return () => this.#subscribers.delete(listener);
  }

  /**
   * Publishes a `vip_stats` event for each VIP whose counters moved since the last call. The
   * server calls this on a timer (e.g. every second) so dashboards show throughput without an
   * event per byte report.
   */
  flushStats(): void {
    for (const row of this.#rows.values()) {
      if (!row.statsDirty) continue;
      row.statsDirty = false;
      this.#publish({ type: "vip_stats", vip: row.vip, stats: { ...row.stats } });
    }
  }

  #vipAllocated(vip: string, target: VipTarget, at: Date): void {
    if (this.#rows.has(vip)) return;
    this.#rows.set(vip, {
      vip,
      target,
      allocatedAt: at,
      stats: { active_connections: 0, total_connections: 0, bytes_sent: 0, bytes_received: 0 },
      connections: new Map(),
      ports: new Set(),
      lastActivity: null,
      statsDirty: false,
    });
    this.#publish({ type: "vip_allocated", vip, target });
  }

  #vipRemoved(vip: string): void {
    const row = this.#rows.get(vip);
    if (!row) return;
    this.#rows.delete(vip);
    this.#publish({ type: "vip_removed", vip, target: row.target });
  }

  #connectionOpened(connection: ConnectionInfo): void {
    const row = this.#rows.get(connection.vip);
    if (!row) return;
    row.connections.set(connection.id, connection);
    row.ports.add(connection.dstPort);
    row.stats.active_connections++;
    row.stats.total_connections++;
    row.lastActivity = connection.createdAt;
    this.#publishConnection(row, connection, "connected");
  }

  #connectionClosed(connection: ConnectionInfo): void {
    const row = this.#rows.get(connection.vip);
    if (!row || !row.connections.delete(connection.id)) return;
    row.stats.active_connections--;
    row.lastActivity = new Date();
    this.#publishConnection(row, connection, "disconnected");
  }

  #bytes(vip: string, sent: number, received: number): void {
    const row = this.#rows.get(vip);
    if (!row) return;
    row.stats.bytes_sent += sent;
    row.stats.bytes_received += received;
    row.lastActivity = new Date();
    row.statsDirty = true;
  }

  #publishConnection(
    row: VipRow,
    connection: ConnectionInfo,
    eventType: "connected" | "disconnected",
  ): void {
    this.#publish({
      type: "connection_changed",
      vip: row.vip,
      event_type: eventType,
      connection: connectionJson(connection),
      active_connections: row.stats.active_connections,
      total_connections: row.stats.total_connections,
    });
  }

  #publish(event: ApiEvent): void {
    const numbered = { id: ++this.#lastId, event };
    this.#ring.push(numbered);
    if (this.#ring.length > this.#ringSize) this.#ring.shift();
    for (const subscriber of this.#subscribers) subscriber(numbered);
  }
}

function rowJson(row: VipRow): VipInfoJson {
  return {
    vip: row.vip,
    target: row.target,
    allocated_at: row.allocatedAt.toISOString(),
    stats: { ...row.stats },
    connections: [...row.connections.values()].map(connectionJson),
    ports: [...row.ports].sort((a, b) => a - b),
    last_activity: row.lastActivity?.toISOString() ?? null,
  };
}

function connectionJson(connection: ConnectionInfo): ConnectionJson {
  return {
    created_at: connection.createdAt.toISOString(),
    src_ip: connection.srcIp,
    src_port: connection.srcPort,
    dst_port: connection.dstPort,
  };
}

/** Orders dotted IPv4 addresses numerically; anything else sorts after, by string. */
function compareIpv4(a: string, b: string): number {
  const na = ipv4Number(a);
  const nb = ipv4Number(b);
  if (na !== undefined && nb !== undefined) return na - nb;
  if (na !== undefined) return -1;
  if (nb !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function ipv4Number(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const part of parts) {
    const octet = Number(part);
    if (!Number.isInteger(octet) || octet < 0 || octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}
