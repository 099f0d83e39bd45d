/** listInPages (core/cluster/paged_list.ts) against a fake `get` that serves pages. */
import { assertEquals, assertRejects } from "../assert.ts";
import { listInPages, MAX_LIST_PAGES } from "../../core/cluster/paged_list.ts";
import { ApiStatusError } from "../../core/k8s/api_client.ts";

/** A `get` serving `items` in pages of the asked size from a snapshot at `rv`; records queries. */
function pagedServer(items: string[], rv = "42") {
  const asked: string[] = [];
  const get = (pathAndQuery: string) => {
    asked.push(pathAndQuery);
    const url = new URL(pathAndQuery, "https://api.invalid");
    const limit = Number(url.searchParams.get("limit"));
    const start = Number(url.searchParams.get("continue")?.replace("after/", "") ?? 0);
    const end = start + limit;
    return Promise.resolve({
      items: items.slice(start, end),
      metadata: {
        resourceVersion: rv,
        ...(end < items.length ? { continue: `after/${end}` } : {}),
      },
    });
  };
  return { get, asked };
}

Deno.test("paged list: pages are asked with limit and the server's continue token, joined in order", async () => {
  const items = Array.from({ length: 7 }, (_, i) => `svc-${i}`);
  const server = pagedServer(items);
  const list = await listInPages(server.get, "/api/v1/services", 3);
  assertEquals(list.items, items);
  assertEquals(list.resourceVersion, "42");
  assertEquals(server.asked, [
    "/api/v1/services?limit=3",
    "/api/v1/services?limit=3&continue=after%2F3",
    "/api/v1/services?limit=3&continue=after%2F6",
  ]);
});

Deno.test("paged list: a list that fits one page is one request, an empty one too", async () => {
  const one = pagedServer(["a", "b"]);
  assertEquals((await listInPages(one.get, "/api/v1/pods", 500)).items, ["a", "b"]);
  assertEquals(one.asked.length, 1);
  const none = pagedServer([]);
  assertEquals((await listInPages(none.get, "/api/v1/pods")).items, []);
  assertEquals(none.asked, ["/api/v1/pods?limit=500"]);
});

Deno.test("paged list: a page the server refuses (410 Expired continue token) fails the whole list", async () => {
  let calls = 0;
  const get = () => {
    if (++calls === 2) return Promise.reject(new ApiStatusError(410, "HTTP 410: too old"));
    return Promise.resolve({ items: ["a"], metadata: { continue: "next" } });
  };
  await assertRejects(
    () => listInPages(get, "/api/v1/pods", 1),
    (error: unknown) => error instanceof ApiStatusError && error.status === 410,
  );
});

Deno.test("paged list: a server that repeats a continue token, or never stops paging, is refused", async () => {
  const circle = (_: string) => Promise.resolve({ items: [1], metadata: { continue: "same" } });
  await assertRejects(
    () => listInPages(circle, "/api/v1/pods"),
    /repeated a continue token/,
  );
  let n = 0;
  const endless = (_: string) =>
    Promise.resolve({ items: [], metadata: { continue: `page-${++n}` } });
  await assertRejects(
    () => listInPages(endless, "/api/v1/pods"),
    new RegExp(`did not end after ${MAX_LIST_PAGES} pages`),
  );
  assertEquals(n, MAX_LIST_PAGES);
});

Deno.test("paged list: items that are not an array are refused, not iterated", async () => {
  const broken = (_: string) => Promise.resolve({ items: "abc" as unknown as string[] });
  await assertRejects(() => listInPages(broken, "/api/v1/pods"), /is not a list/);
});
