/** Upload tokens, file URL UUIDs, Digest and Range headers (storage.ts). */
import { randomBytes } from "node:crypto";
import { describe, expect, test } from "vitest";
import {
  isUuid,
  parseDigestHeader,
  parseRange,
  StorageKeys,
  UPLOAD_TOKEN_VALIDITY_MS,
} from "./storage.js";

describe("upload tokens", () => {
  test("a token is good for an hour, then expired", () => {
    let now = 1_800_000_000_000;
    const keys = new StorageKeys(randomBytes(32), () => now);
    const token = keys.issueUploadToken();
    expect(keys.checkUploadToken(token)).toBe("ok");
    expect(keys.checkUploadToken(token)).toBe("ok"); // like the backend's, usable within the hour
    now += UPLOAD_TOKEN_VALIDITY_MS - 1;
    expect(keys.checkUploadToken(token)).toBe("ok");
    now += 1;
    expect(keys.checkUploadToken(token)).toBe("expired");
  });

  test("tokens are unguessable: random, and a changed or foreign token is invalid", () => {
    const keys = new StorageKeys(randomBytes(32));
    const a = keys.issueUploadToken();
    const b = keys.issueUploadToken();
    expect(a).not.toBe(b);
    const raw = Buffer.from(a, "base64url");
    raw[10] ^= 1;
    expect(keys.checkUploadToken(raw.toString("base64url"))).toBe("invalid");
    expect(new StorageKeys(randomBytes(32)).checkUploadToken(a)).toBe("invalid");
    for (const bad of ["", "0.1234", "abc", "x".repeat(75)]) {
      expect(keys.checkUploadToken(bad)).toBe("invalid");
    }
  });
});

test("a file's URL UUID is stable for one secret, different for another, and a UUID", () => {
  const secret = randomBytes(32);
  const uuid = new StorageKeys(secret).fileUuid("000000000000000000010000_storage");
  expect(isUuid(uuid)).toBe(true);
  expect(uuid[14]).toBe("4");
  expect(new StorageKeys(secret).fileUuid("000000000000000000010000_storage")).toBe(uuid);
  expect(new StorageKeys(secret).fileUuid("000000000000000000010001_storage")).not.toBe(uuid);
  expect(new StorageKeys(randomBytes(32)).fileUuid("000000000000000000010000_storage")).not.toBe(
    uuid,
  );
});

test("Digest: sha-256=<base64> as the backend reads it", () => {
  const digest = randomBytes(32);
  expect(parseDigestHeader(`sha-256=${digest.toString("base64")}`)).toEqual(digest);
  expect(parseDigestHeader(`sha-256=${randomBytes(20).toString("base64")}`)).toBeNull();
  expect(parseDigestHeader(`md5=${digest.toString("base64")}`)).toBeNull();
});

test("one byte range is served; several are refused; others mean the whole file", () => {
  expect(parseRange(undefined, 10)).toBeNull();
  expect(parseRange("bytes=0-4", 10)).toEqual({ start: 0, end: 4 });
  expect(parseRange("bytes=5-", 10)).toEqual({ start: 5, end: 9 });
  expect(parseRange("bytes=-3", 10)).toEqual({ start: 7, end: 9 });
  expect(parseRange("bytes=8-100", 10)).toEqual({ start: 8, end: 9 });
  expect(parseRange("bytes=0-1,4-5", 10)).toBe("multiple");
  expect(parseRange("bytes=10-", 10)).toBe("unsatisfiable");
  expect(parseRange("items=0-1", 10)).toBeNull();
});
