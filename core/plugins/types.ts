/** Types shared by the plugin loader, the isolation host and the CLI. */
import type { ClusterReader, PluginKind, PluginModule, PluginParts } from "../../mod.ts";
import type { DialerChain } from "./chain.ts";

/** A plugin ready to use. */
export interface LoadedPlugin {
  name: string;
  version: string;
  kinds: PluginKind[];
  /** Lower runs first: third-party default 50, built-ins 100. */
  priority: number;
  /** `built-in`, or the plugin's entry file. */
  source: string;
  builtin: boolean;
  permissions?: PluginModule["permissions"];
  /** Whether the plugin runs in its own Worker with only its declared permissions. */
  isolated?: boolean;
  /** Stops the plugin (its Worker, when isolated). */
  close?: () => void;
  parts: PluginParts;
}

/** A plugin that could not be loaded, and why. */
export interface PluginFailure {
  source: string;
  message: string;
}

/** What every plugin's `setup` receives, besides its own config and logger. */
export interface PluginEnvironment {
  cluster: ClusterReader;
  /** The chain `ctx.dialNext` uses; `loadPlugins` fills it. */
  dialers?: DialerChain;
  /** Per-plugin configuration, by plugin name. */
  config?: Record<string, Record<string, string>>;
  /** Time limit for a plugin's `setup` (default 10 s). */
  setupTimeoutMs?: number;
  /**
   * Run third-party resolver and dialer plugins in Workers with only their declared permissions
   * (needs `--unstable-worker-options`; otherwise they run in-process and a warning says so).
   */
  isolate?: boolean;
  /**
   * Third-party plugins the user allows to run in-process though isolation is on
   * (`--allow-unisolated NAME`): the only way a DNS-mode plugin, which cannot run isolated, loads.
   */
  allowUnisolated?: string[];
  /**
   * Who may own plugin files and folders, which must also be writable by no one else. Default:
   * root and `SUDO_UID` when running as root, no check otherwise; `null` turns the check off.
   */
  codeOwners?: number[] | null;
}

/** Default priority for third-party plugins (before the built-ins' 100). */
export const DEFAULT_PRIORITY = 50;
