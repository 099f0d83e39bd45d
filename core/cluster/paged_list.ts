/**
 * A collection listed in pages, as kubectl and client-go's reflector list it: `limit` objects per
 * request and the server's `continue` token for the next page, until a page comes without one.
 * One request per page keeps every answer small whatever the cluster's size (a whole list of a
 * big cluster's pods in one body is hundreds of MiB), and a page the server cannot give any more
 * (its snapshot was compacted: 410 Gone) fails the list, which the caller starts again.
 *
 * Every page is served from the same snapshot, so the list's resourceVersion is the pages' one
 * (docs/portforward.md §11).
 */

/** What one page of a list carries (only what the cluster view reads). */
export interface ListPage<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/** Objects per page: client-go's reflector asks for as many. */
export const LIST_PAGE_SIZE = 500;

/**
 * Pages past which a list is given up: a server that keeps answering with a `continue` token
 * is broken or hostile, and the objects would pile up in memory for ever. Five million objects at
 * the default page size.
 */
export const MAX_LIST_PAGES = 10_000;

/**
 * Lists `path` (a collection, without a query) page by page with `get`, and returns the items of
 * every page and the snapshot's resourceVersion.
 */
export async function listInPages<T>(
  get: (pathAndQuery: string) => Promise<ListPage<T>>,
  path: string,
  pageSize = LIST_PAGE_SIZE,
): Promise<{ items: T[]; resourceVersion?: string }> {
  const items: T[] = [];
  const seen = new Set<string>();
  let token: string | undefined;
  for (let pages = 0;; pages++) {
    if (pages === MAX_LIST_PAGES) {
      throw new Error(`the list of ${path} did not end after ${MAX_LIST_PAGES} pages`);
    }
    const query = `?limit=${pageSize}` + (token ? `&continue=${encodeURIComponent(token)}` : "");
    const page = await get(path + query);
    if (page?.items !== undefined && page.items !== null && !Array.isArray(page.items)) {
      throw new Error(`the list of ${path} is not a list (its items are no array)`);
    }
    for (const item of page.items ?? []) items.push(item);
    const next = page.metadata?.continue;
    if (typeof next !== "string" || next === "") {
      const version = page.metadata?.resourceVersion;
      return { items, resourceVersion: typeof version === "string" ? version : undefined };
    }
    // A token handed out twice would page in a circle.
    if (seen.has(next)) throw new Error(`the list of ${path} repeated a continue token`);
    seen.add(next);
    token = next;
  }
}
