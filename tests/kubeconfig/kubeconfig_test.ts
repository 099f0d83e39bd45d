/** Loading the kubeconfig (core/kubeconfig.ts): errors a user can act on. */
import { assertThrows } from "../assert.ts";
import { loadKubeConfig } from "../../core/kubeconfig.ts";

Deno.test("kubeconfig: a missing file or context is one clear error naming them", () => {
  assertThrows(
    () => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" }),
    /no kubeconfig found at \/nonexistent\/kubeconfig — pass --kubeconfig FILE/,
  );
});
