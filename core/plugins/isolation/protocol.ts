/**
 * Messages between k8stun and a plugin running isolated in a Worker. Streams (a dialed
 * connection's readable and writable) are transferred, never copied per chunk by hand.
 */
import type { DialTarget, FlowRequest, PluginModule } from "../../../mod.ts";

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  reason?: string;
  stack?: string;
}

/** What the plugin contributed, by name (the functions stay in the worker). */
export interface WireParts {
  resolvers: { name: string; names: boolean; addresses: boolean }[];
  dialers: { name: string }[];
}

/** k8stun → worker. */
export type HostMessage =
  | { type: "probe"; url: string }
  | {
    type: "init";
    url: string;
    config: Record<string, string>;
    apiVersion: number;
    sab: SharedArrayBuffer;
  }
  | {
    type: "resolve";
    id: number;
    method: "resolveName" | "resolveAddress";
    resolver: number;
    arg: string;
  }
  | { type: "accepts"; id: number; dialer: number; target: DialTarget }
  | { type: "dial"; id: number; dialer: number; target: DialTarget; flow: FlowRequest }
  | { type: "cancel"; id: number }
  | { type: "abortStream"; id: number; reason?: string }
  | {
    type: "dialNextResult";
    id: number;
    readable?: ReadableStream<Uint8Array>;
    writable?: WritableStream<Uint8Array>;
    error?: WireError;
  };

/** Worker → k8stun. */
export type WorkerMessage =
  /** `manifest` is null when the module has no `plugin` object export. */
  | { type: "manifest"; manifest: Omit<PluginModule, "setup"> | null }
  | { type: "ready"; parts: WireParts }
  | { type: "failed"; error: WireError }
  | { type: "result"; id: number; value?: unknown; error?: WireError }
  | {
    type: "dialed";
    id: number;
    readable?: ReadableStream<Uint8Array>;
    writable?: WritableStream<Uint8Array>;
    error?: WireError;
  }
  | {
    type: "log";
    level: "debug" | "info" | "warn" | "error";
    message: string;
    properties?: Record<string, unknown>;
  }
  | { type: "cluster"; method: "namespaces" | "hasService" | "hasPod"; args: string[] }
  | { type: "dialNext"; id: number; target: DialTarget; flow: FlowRequest }
  | { type: "abortNext"; id: number };
