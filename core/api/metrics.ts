/**
 * Prometheus metrics (text exposition format 0.0.4). A tiny registry — counters, gauges and
 * histograms with labels — fed by telemetry, rendered on `/metrics`. Metric names follow the Rust
 * k8stun (docs/compatibility.md §2); per-target connection series are added so connections can
 * be followed per target (their cardinality is bounded by the services and pods actually used).
 */
import type { TelemetryEvent, TelemetrySink } from "../telemetry.ts";

type Labels = Record<string, string>;

/** Seconds buckets for dial and upstream latencies (5 ms … 10 s). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
}

class LabelledValues {
  readonly values = new Map<string, { labels: Labels; value: number }>();

  add(labels: Labels, delta: number): void {
    const key = labelKey(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += delta;
    else this.values.set(key, { labels, value: delta });
  }
}

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]) this.counts[i]++;
    }
    this.sum += seconds;
    this.count++;
  }
}

/** Gauges read at scrape time (e.g. the number of VIPs by type). */
export interface MetricsGauges {
  vipsByType(): Record<string, number>;
  /** Packets the TUN's packet loop dropped so far, by reason (absent without a TUN). */
  tunDrops?(): Record<string, number>;
}

/** Collects telemetry into Prometheus series. */
export class Metrics implements TelemetrySink {
  readonly #connectionsTotal = new LabelledValues();
  readonly #targetActive = new LabelledValues();
  readonly #targetTotal = new LabelledValues();
  readonly #bytes = new LabelledValues();
  readonly #dialErrors = new LabelledValues();
  readonly #dnsQueries = new LabelledValues();
  readonly #watchRestarts = new LabelledValues();
  readonly #objectsRefused = new LabelledValues();
  readonly #dnsUpstream = new Histogram();
  readonly #portforwardDial = new Histogram();
  readonly #connectionTarget = new Map<number, Labels>();
  #active = 0;

  constructor(readonly gauges?: MetricsGauges) {}

  emit(event: TelemetryEvent): void {
    switch (event.type) {
      case "connection_opened": {
        this.#active++;
        this.#connectionsTotal.add({ result: "opened" }, 1);
        const target = { vip: event.connection.vip };
        this.#connectionTarget.set(event.connection.id, target);
        this.#targetActive.add(target, 1);
        this.#targetTotal.add(target, 1);
        return;
      }
      case "connection_closed": {
        const target = this.#connectionTarget.get(event.connection.id);
        if (!target) return;
        this.#connectionTarget.delete(event.connection.id);
        this.#active--;
        this.#targetActive.add(target, -1);
        // A reset is how many servers end a connection (iperf3 closes its data connections with
        // bytes unread): it is counted apart from failures of k8stun's own path.
        const result = event.reset ? "reset" : event.error ? "error" : "closed";
        this.#connectionsTotal.add({ result }, 1);
        return;
      }
      case "bytes":
        this.#bytes.add({ direction: "sent" }, event.sent);
        this.#bytes.add({ direction: "received" }, event.received);
        return;
      case "dial_error":
        this.#dialErrors.add({ reason: event.reason }, 1);
        this.#connectionsTotal.add({ result: "dial_failed" }, 1);
        return;
      case "dns_query":
        this.#dnsQueries.add({ kind: event.kind, rcode: event.rcode }, 1);
        if (event.kind === "upstream" && event.seconds !== undefined) {
          this.#dnsUpstream.observe(event.seconds);
        }
        return;
      case "portforward_dial":
        this.#portforwardDial.observe(event.seconds);
        return;
      case "watch_restart":
        this.#watchRestarts.add({ resource: event.resource }, 1);
        return;
      case "object_refused":
        this.#objectsRefused.add({ resource: event.resource }, 1);
        return;
    }
  }

  /** Renders every series in Prometheus text format 0.0.4. */
  render(): string {
    const out: string[] = [];
    const vips = this.gauges?.vipsByType() ?? {};
    family(out, { name: "k8stun_vips", help: "Allocated virtual IPs", type: "gauge" });
    for (const type of ["service", "pod"]) sample(out, "k8stun_vips", { type }, vips[type] ?? 0);
    family(out, {
      name: "k8stun_connections_active",
      help: "Connections currently relayed",
      type: "gauge",
    });
    sample(out, "k8stun_connections_active", {}, this.#active);
    labelledFamily(out, {
      name: "k8stun_connections_total",
      help: "Connections by outcome (opened, closed, error, dial_failed)",
      type: "counter",
    }, this.#connectionsTotal);
    labelledFamily(out, {
      name: "k8stun_target_connections_active",
      help: "Connections currently relayed, per VIP",
      type: "gauge",
    }, this.#targetActive);
    labelledFamily(out, {
      name: "k8stun_target_connections_total",
      help: "Connections opened, per VIP",
      type: "counter",
    }, this.#targetTotal);
    labelledFamily(out, {
      name: "k8stun_bytes_total",
      help: "Bytes relayed (sent = app to cluster)",
      type: "counter",
    }, this.#bytes);
    labelledFamily(out, {
      name: "k8stun_dial_errors_total",
      help: "Failed dials by reason",
      type: "counter",
    }, this.#dialErrors);
    labelledFamily(out, {
      name: "k8stun_dns_queries_total",
      help: "DNS queries by kind (cluster, upstream) and response code",
      type: "counter",
    }, this.#dnsQueries);
    histogram(out, {
      name: "k8stun_dns_upstream_seconds",
      help: "Upstream DNS round-trip time",
      type: "histogram",
    }, this.#dnsUpstream);
    histogram(out, {
      name: "k8stun_portforward_dial_seconds",
      help: "Port-forward stream setup time",
      type: "histogram",
    }, this.#portforwardDial);
    labelledFamily(out, {
      name: "k8stun_watch_restarts_total",
      help: "Kubernetes watch restarts by resource",
      type: "counter",
    }, this.#watchRestarts);
    const tunDrops = this.gauges?.tunDrops?.();
    if (tunDrops) {
      family(out, {
        name: "k8stun_tun_packets_dropped_total",
        help: "Packets the TUN's packet loop dropped: from a source that is not this host's " +
          "(foreign), datagrams past what may wait for k8stun (datagram_overload)",
        type: "counter",
      });
      for (const [reason, value] of Object.entries(tunDrops)) {
        sample(out, "k8stun_tun_packets_dropped_total", { reason }, value);
      }
    }
    labelledFamily(out, {
      name: "k8stun_cluster_objects_refused_total",
      help: "Objects from the API server left out for a misshapen field or name, by resource",
      type: "counter",
    }, this.#objectsRefused);
    return out.join("\n") + "\n";
  }
}

function family(out: string[], f: Family): void {
  out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
}

function labelledFamily(out: string[], f: Family, values: LabelledValues): void {
  family(out, f);
  for (const { labels, value } of values.values.values()) sample(out, f.name, labels, value);
}

function histogram(out: string[], f: Family, h: Histogram): void {
  family(out, f);
  LATENCY_BUCKETS.forEach((le, i) =>
    sample(out, `${f.name}_bucket`, { le: String(le) }, h.counts[i])
  );
  sample(out, `${f.name}_bucket`, { le: "+Inf" }, h.count);
  sample(out, `${f.name}_sum`, {}, h.sum);
  sample(out, `${f.name}_count`, {}, h.count);
}

function sample(out: string[], name: string, labels: Labels, value: number): void {
  const entries = Object.entries(labels);
  const text = entries.length === 0
    ? ""
    : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
  out.push(`${name}${text} ${value}`);
}

/** Label values escape backslash, double quote and newline (exposition format 0.0.4). */
function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function labelKey(labels: Labels): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");
}
