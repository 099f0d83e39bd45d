/** The fixture format: a pod's IP can be set (`podIP`), and an unknown field is an error naming its path. */
import { assertEquals, assertThrows } from "../assert.ts";
import { parseFixture, startSimCluster } from "../../sim/mod.ts";

const FIXTURE = `
namespaces:
  - name: shop
    services:
      - name: api
        selector: { app: api }
        ports: [{ name: http, port: 80, targetPort: 8080 }]
    pods:
      - name: api-0
        labels: { app: api }
        podIP: 10.1.2.3
        ports: [{ name: http, containerPort: 8080, serve: http }]
      - name: api-1
        labels: { app: api }
        ports: [{ name: http, containerPort: 8080, serve: http }]
`;

Deno.test({
  name: "sim: a fixture pod's podIP is its IP in the Pod and in its service's EndpointSlice",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: parseFixture(FIXTURE), tls: false });
    const pod = sim.state.get("pods", "shop", "api-0")!;
    assertEquals((pod.status as { podIP: string }).podIP, "10.1.2.3");
    const slice = sim.state.list("endpointslices", "shop")[0] as unknown as {
      endpoints: { addresses: string[]; targetRef: { name: string } }[];
    };
    const byPod = Object.fromEntries(
      slice.endpoints.map((e) => [e.targetRef.name, e.addresses[0]]),
    );
    assertEquals(byPod["api-0"], "10.1.2.3");
    assertEquals(sim.state.pod("shop", "api-1")!.ip !== "10.1.2.3", true);
  },
});

Deno.test("sim: a fixture field the format does not know is an error naming its path", () => {
  const cases: [string, RegExp][] = [
    [
      FIXTURE.replace("podIP: 10.1.2.3", "ip: 10.1.2.3"),
      /namespaces\[0\]\.pods\[0\]\.ip: unknown field \(the pod's IP is podIP\)/,
    ],
    [
      FIXTURE.replace("targetPort: 8080", "tagetPort: 8080"),
      /namespaces\[0\]\.services\[0\]\.ports\[0\]\.tagetPort: unknown field/,
    ],
    [
      FIXTURE.replace(
        "serve: http }]\n      - name: api-1",
        "serve: http, proto: TCP }]\n      - name: api-1",
      ),
      /namespaces\[0\]\.pods\[0\]\.ports\[0\]\.proto: unknown field/,
    ],
    [`${FIXTURE}extra: 1\n`, /fixture: extra: unknown field/],
    [
      FIXTURE.replace("podIP: 10.1.2.3", "podIP: 10.1.2.300"),
      /namespaces\[0\]\.pods\[0\]\.podIP: "10\.1\.2\.300" is not an IPv4 address/,
    ],
    [
      FIXTURE.replace(
        "labels: { app: api }\n        ports",
        "labels: { app: api }\n        podIP: 10.1.2.3\n        ports",
      ),
      /namespaces\[0\]\.pods\[1\]\.podIP: 10\.1\.2\.3 is already the IP of namespaces\[0\]\.pods\[0\]/,
    ],
    [
      FIXTURE.replace("selector: { app: api }", "selector: { app: 7 }"),
      /namespaces\[0\]\.services\[0\]\.selector\.app: must be a string/,
    ],
  ];
  for (const [text, message] of cases) {
    assertThrows(() => parseFixture(text), message);
  }
});
