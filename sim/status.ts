/**
 * Failures as the API server answers them: a JSON `Status` body with the HTTP code, a reason and a
 * message (docs/portforward.md §10), and the ones the simulator's fault injection stands in for.
 */

/** Builds a `Status` body (docs/portforward.md §10). */
export function status(code: number, reason: string, message: string, details?: unknown): Response {
  return new Response(
    JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    }) + "\n",
    { status: code, headers: { "content-type": "application/json" } },
  );
}

/** The answer to a request a test told the simulator to fail with `code`. */
export function injectedFailure(code: number, path: string): Response {
  switch (code) {
    case 401:
      return status(401, "Unauthorized", "Unauthorized");
    case 403:
      return status(403, "Forbidden", `forbidden: User "lab" cannot get path "${path}"`);
    case 404:
      return status(404, "NotFound", "the server could not find the requested resource");
    default:
      return status(500, "InternalError", "Internal error occurred: injected by the simulator");
  }
}
