/** Test assertions: `node:assert/strict` under the names the tests use (`@std/assert` is JSR-only). */
import assertModule from "node:assert/strict";

export const assert: (value: unknown, message?: string) => asserts value = assertModule.ok;
export const assertEquals: <T>(
  actual: unknown,
  expected: T,
  message?: string,
) => asserts actual is T = assertModule.deepStrictEqual;
export const assertNotEquals = assertModule.notDeepStrictEqual;
export const assertMatch = (actual: string, re: RegExp, message?: string): void =>
  assertModule.match(actual, re, message);
export const assertRejects = assertModule.rejects;
export const assertThrows = assertModule.throws;
