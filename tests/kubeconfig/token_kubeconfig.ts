/** A one-context kubeconfig for tests: `server`, a bearer token, and the cluster's CA when given. */
export function tokenKubeconfig(
  server: string,
  options: { token?: string; caPem?: string } = {},
): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: fake",
    "  cluster:",
    `    server: ${server}`,
    ...(options.caPem ? [`    certificate-authority-data: ${btoa(options.caPem)}`] : []),
    "users:",
    "- name: fake-user",
    "  user:",
    `    token: ${options.token ?? "fake-token"}`,
    "contexts:",
    "- name: fake",
    "  context:",
    "    cluster: fake",
    "    user: fake-user",
    "current-context: fake",
    "",
  ].join("\n");
}
