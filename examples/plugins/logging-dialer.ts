/**
 * Example dialer plugin: wraps every connection, logs how many bytes went each way when it ends,
 * and passes the dial on to the next dialer (port-forward, direct, …) with `ctx.dialNext`.
 */
import type { DialOptions, DialTarget, Duplex, PluginModule } from "../../mod.ts";

export const plugin: PluginModule = {
  name: "logging-dialer",
  version: "1.0.0",
  apiVersion: 1,
  kinds: ["dialer"],
  priority: 10,
  setup(ctx) {
    return {
      dialers: [{
        name: "logging-dialer",
        accepts: () => true,
        async dial(target: DialTarget, options: DialOptions): Promise<Duplex> {
          const inner = await ctx.dialNext(target, options);
          const where = target.kind === "pod"
            ? `pod ${target.namespace}/${target.name}:${target.port}`
            : `${target.host}:${target.port}`;
          let sent = 0;
          let received = 0;
          let open = 2;
          const done = () => {
            if (--open === 0) {
              ctx.log.info("connection to {where} closed: {sent} bytes sent, {received} received", {
                where,
                sent,
                received,
              });
            }
          };
          const count = (add: (n: number) => void) =>
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                add(chunk.byteLength);
                controller.enqueue(chunk);
              },
              flush: done,
            });
          const upstream = count((n) => sent += n);
          const downstream = count((n) => received += n);
          upstream.readable.pipeTo(inner.writable).catch(() => inner.abort());
          return {
            readable: inner.readable.pipeThrough(downstream),
            writable: upstream.writable,
            abort: (reason) => inner.abort(reason),
          };
        },
      }],
    };
  },
};
