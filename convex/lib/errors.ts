/**
 * Typed failures for every Convex function in this project.
 *
 * Callers (the Python client, the worker's activities, the UI) classify a failure by
 * `data.code` instead of parsing message text, so every refusal goes through `fail`, which
 * throws a `ConvexError` whose data is always `{code, message}`.
 */
import { ConvexError } from "convex/values";

import { ERROR_CODES, type ErrorCode } from "./contract";

/** The only codes a function here throws (convex/lib/contract.json; README.md, data model). */
export { ERROR_CODES, type ErrorCode };

/** The data carried by every ConvexError thrown here. */
export type ErrorData = { code: ErrorCode; message: string };

/**
 * Throw a ConvexError with `{code, message}`. Typed `never` so TypeScript narrows after it.
 * A mutation that throws writes nothing, so refusing is always safe to retry.
 */
export function fail(code: ErrorCode, message: string): never {
  throw new ConvexError<ErrorData>({ code, message });
}
