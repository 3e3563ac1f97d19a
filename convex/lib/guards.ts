/**
 * Argument checks that validators cannot express: sizes, non-empty strings, limits, timestamps.
 *
 * Convex caps a document at 1 MiB; a step payload or event data near that would fail deep in
 * the backend with an opaque error, or make a timeline page too big to return. Bounding each
 * free-form value at 64 KiB serialized keeps every document far below the cap and tells the
 * caller exactly what to change.
 */
import { convexToJson, type Value } from "convex/values";
import { fail } from "./errors";

import {
  MAX_CONTENT_BYTES,
  MAX_ID_LENGTH,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_TEXT_LENGTH,
  MAX_URL_LENGTH,
  MAX_VALUE_BYTES,
} from "./contract";

const encoder = new TextEncoder();

/** UTF-8 size of `value` as Convex's JSON encoding writes it. */
export function serializedSize(value: Value): number {
  return encoder.encode(JSON.stringify(convexToJson(value))).length;
}

/**
 * Refuse a free-form value whose serialized size exceeds `limit` with TOO_LARGE, naming the
 * field, its size and the limit. `undefined` (field not given) always passes.
 */
export function assertSizeWithin(
  field: string,
  value: Value | undefined,
  limit: number = MAX_VALUE_BYTES,
): void {
  if (value === undefined) return;
  const size = serializedSize(value);
  if (size > limit) {
    fail(
      "TOO_LARGE",
      `${field} is ${size} bytes serialized; the limit is ${limit} bytes (${limit / 1024} KiB). ` +
        `Store large content elsewhere (e.g. an artifact URL) and pass a reference or a summary.`,
    );
  }
}

/**
 * Require a non-blank string of at most `maxLength` characters; returns it unchanged.
 * `singleToken` also refuses whitespace inside (repo names, branches, ids).
 */
export function requireText(
  field: string,
  value: string,
  maxLength: number,
  options: { singleToken?: boolean } = {},
): string {
  if (value.trim().length === 0) {
    fail("INVALID_ARGUMENT", `${field} must be a non-empty string; pass a value with text in it.`);
  }
  if (value.length > maxLength) {
    fail(
      "INVALID_ARGUMENT",
      `${field} is ${value.length} characters; the limit is ${maxLength}. Pass a shorter ${field}.`,
    );
  }
  if (options.singleToken && /\s/.test(value)) {
    fail("INVALID_ARGUMENT", `${field} must not contain whitespace; got ${JSON.stringify(value)}.`);
  }
  return value;
}

/** Like requireText but `undefined` passes (an optional argument that was not given). */
export function optionalText(
  field: string,
  value: string | undefined,
  maxLength: number,
  options: { singleToken?: boolean } = {},
): string | undefined {
  return value === undefined ? undefined : requireText(field, value, maxLength, options);
}

/** A string that may be empty but is bounded in length. */
export function boundedText(field: string, value: string, maxLength: number): string {
  if (value.length > maxLength) {
    fail(
      "INVALID_ARGUMENT",
      `${field} is ${value.length} characters; the limit is ${maxLength}. Pass a shorter ${field}.`,
    );
  }
  return value;
}

/** Chat message content: non-blank, at most MAX_CONTENT_BYTES in UTF-8 (TOO_LARGE beyond). */
export function requireContent(value: string): string {
  if (value.trim().length === 0) {
    fail("INVALID_ARGUMENT", "content must be a non-empty string; pass the message text.");
  }
  const size = encoder.encode(value).length;
  if (size > MAX_CONTENT_BYTES) {
    fail(
      "TOO_LARGE",
      `content is ${size} bytes; the limit is ${MAX_CONTENT_BYTES} bytes ` +
        `(${MAX_CONTENT_BYTES / 1024} KiB). Attach long text as an artifact and link it instead.`,
    );
  }
  return value;
}

/** An idempotency key: non-blank, no whitespace, at most MAX_IDEMPOTENCY_KEY_LENGTH characters. */
export function requireIdempotencyKey(value: string): string {
  return requireText("idempotencyKey", value, MAX_IDEMPOTENCY_KEY_LENGTH, { singleToken: true });
}

/** A git commit SHA: 7 to 64 hexadecimal characters. */
export function requireCommitSha(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9a-fA-F]{7,64}$/.test(value)) {
    fail(
      "INVALID_ARGUMENT",
      `commitSha must be 7 to 64 hexadecimal characters (a git SHA); got ${JSON.stringify(value.slice(0, 80))}.`,
    );
  }
  return value;
}

/**
 * Refuse credentials inside a URL: secrets never reach Convex. A password (`user:pass@`) is
 * refused in any URL; for http(s) any user part is, since tokens travel there (`TOKEN@host`).
 * An ssh user without a password (`ssh://git@host/...`, `git@host:...`) is fine.
 */
export function refuseCredentials(field: string, value: string): string {
  const withPassword = /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(value);
  const httpUser = /^https?:\/\/[^/@]+@/i.test(value);
  if (withPassword || httpUser) {
    fail(
      "INVALID_ARGUMENT",
      `${field} must not carry credentials (a user, token or password before "@"). ` +
        "Pass the plain URL and give the worker its token through GITHUB_TOKEN.",
    );
  }
  return value;
}

/** A URL: non-blank, no whitespace, no credentials, at most MAX_URL_LENGTH characters. */
export function requireUrl(field: string, value: string): string {
  return refuseCredentials(field, requireText(field, value, MAX_URL_LENGTH, { singleToken: true }));
}

/** A repository: a clone URL, an ssh address or a local path; no credentials. */
export function requireRepo(value: string): string {
  return requireUrl("repo", value);
}

/** A millisecond timestamp: a finite, non-negative number. `undefined` passes. */
export function optionalTimestamp(field: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isFinite(value) || value < 0) {
    fail(
      "INVALID_ARGUMENT",
      `${field} must be a finite, non-negative millisecond timestamp (e.g. Date.now()); got ${value}.`,
    );
  }
  return value;
}

export function requireTimestamp(field: string, value: number): number {
  return optionalTimestamp(field, value) as number;
}

/**
 * A whole number from `least` (to `most`, when given), or `undefined` when not given; anything
 * else is INVALID_ARGUMENT naming the field and the range.
 */
export function optionalWholeNumber(
  field: string,
  value: number | undefined,
  least = 0,
  most?: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < least || (most !== undefined && value > most)) {
    const range = most === undefined ? `of at least ${least}` : `from ${least} to ${most}`;
    fail("INVALID_ARGUMENT", `${field} must be a whole number ${range}; got ${value}.`);
  }
  return value;
}

/** A length of time in ms: a finite, non-negative number. */
export function requireDuration(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    fail("INVALID_ARGUMENT", `${field} must be a finite, non-negative number of ms; got ${value}.`);
  }
  return value;
}

/**
 * Resolve a page size: `undefined` gives `defaultLimit`; otherwise an integer in [1, max],
 * else INVALID_ARGUMENT. Every list read goes through this, so no read is unbounded.
 */
export function resolveLimit(limit: number | undefined, defaultLimit: number, max: number): number {
  if (limit === undefined) return defaultLimit;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    fail("INVALID_ARGUMENT", `limit must be a whole number from 1 to ${max}; got ${limit}.`);
  }
  return limit;
}
