/** `k8stun sim`: the simulated cluster on its own, for pointing any mode at it with --kubeconfig. */
import type { Command } from "commander";
import { DEMO_FIXTURE, parseFixture, startSimCluster } from "../../sim/mod.ts";
import { parseListenAddress } from "../run_options.ts";
import { runUntilSignalled } from "../session.ts";

/** Registers `sim`. */
export function registerSim(program: Command): void {
  program.command("sim")
    .description("run the simulated Kubernetes cluster in the foreground")
    .option("--fixture <file>", "fixture (YAML or JSON; default: the demo cluster)")
    .option("--kubeconfig-out <file>", "write a kubeconfig for it here")
    .option("--listen <host:port>", "API address", "127.0.0.1:0")
    .option("--no-tls", "serve plain HTTP instead of HTTPS")
    .option("--no-tunnel", "refuse the SPDY-over-WebSocket tunnel, like clusters before 1.31")
    .option("--token <token>", "bearer token the API requires (default: random)")
    .option("--namespace <ns>", "the kubeconfig context's namespace", "default")
    .action(
      async (
        options: {
          fixture?: string;
          kubeconfigOut?: string;
          listen: string;
          tls: boolean;
          tunnel: boolean;
          token?: string;
          namespace: string;
        },
      ) => {
        const fixture = options.fixture
          ? parseFixture(await Deno.readTextFile(options.fixture), options.fixture)
          : DEMO_FIXTURE;
        const listen = parseListenAddress(options.listen, 0);
        const sim = await startSimCluster({
          fixture,
          tls: options.tls,
          tunnel: options.tunnel,
          token: options.token,
          hostname: listen.hostname,
          port: listen.port,
        });
        console.log(`simulated cluster API: ${sim.url}`);
        if (options.kubeconfigOut) {
          await sim.writeKubeconfig(options.kubeconfigOut, options.namespace);
          console.log(`kubeconfig: ${options.kubeconfigOut}`);
        } else {
          console.log(sim.kubeconfig(options.namespace));
        }
        await runUntilSignalled(() => sim.close());
      },
    );
}
