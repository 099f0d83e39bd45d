/** Headless Chromium (Debian's) driven by playwright-core, for dashboard tests. */
import { type Browser, chromium } from "playwright-core";

/** Where Debian installs Chromium (package `chromium`). */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags that keep Chromium headless, off the network and quiet (the closed network refuses it). */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Whether a browser test can run here, or why not. */
export async function browserUnavailable(): Promise<string | undefined> {
  try {
    await Deno.stat(CHROMIUM);
    return undefined;
  } catch {
    return `${CHROMIUM} is missing (apt-get install chromium)`;
  }
}

/**
 * Launches headless Chromium with flags that keep it off the network and quiet (playwright gives
 * it a fresh temporary profile).
 */
export async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return Object.assign(browser, {
    async [Symbol.asyncDispose]() {
      await browser.close().catch(() => {});
    },
  });
}
