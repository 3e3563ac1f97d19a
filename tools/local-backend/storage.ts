/**
 * File storage URLs as Convex's backend hands them out (crates/file_storage/src/core.rs,
 * crates/local_backend/src/storage.rs):
 *
 * - `ctx.storage.generateUploadUrl()` answers `<origin>/api/storage/upload?token=<token>`. The
 *   token is an authorization the server can check without remembering it: the issue time, 16
 *   random bytes and an HMAC-SHA256 of both under the server's secret, base64url. It is valid for
 *   an hour, like the backend's (and, like the backend's, may be used more than once in that hour);
 *   it cannot be guessed or forged without the secret.
 * - `ctx.storage.getUrl(id)` answers `<origin>/api/storage/<uuid>`: the backend puts the file's
 *   storage UUID (not its `_storage` document id) in the path. Here the UUID is derived from the
 *   document id with an HMAC under the same secret, so it is stable for the life of the data
 *   (the secret is kept in LOCAL_BACKEND_DATA_DIR) and reveals nothing about the id.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** The backend's STORE_FILE_AUTHORIZATION_VALIDITY. */
export const UPLOAD_TOKEN_VALIDITY_MS = 60 * 60 * 1000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID.test(text);
}

export type UploadTokenCheck = "ok" | "invalid" | "expired";

export class StorageKeys {
  constructor(
    private readonly secret: Buffer,
    private readonly now: () => number = Date.now,
  ) {
    if (secret.length < 32) throw new Error("the storage secret must be at least 32 bytes");
  }

  private mac(label: string, data: Buffer): Buffer {
    return createHmac("sha256", this.secret).update(label).update(data).digest();
  }

  issueUploadToken(): string {
    const body = Buffer.alloc(24);
    body.writeBigUInt64BE(BigInt(Math.floor(this.now())), 0);
    randomBytes(16).copy(body, 8);
    return Buffer.concat([body, this.mac("upload", body)]).toString("base64url");
  }

  checkUploadToken(token: string): UploadTokenCheck {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) return "invalid";
    const raw = Buffer.from(token, "base64url");
    if (raw.length !== 56) return "invalid";
    const body = raw.subarray(0, 24);
    if (!timingSafeEqual(raw.subarray(24), this.mac("upload", body))) return "invalid";
    const issued = Number(body.readBigUInt64BE(0));
    return issued + UPLOAD_TOKEN_VALIDITY_MS <= this.now() ? "expired" : "ok";
  }

  /** The UUID (version 4 layout) that stands for `storageId` in file URLs. */
  fileUuid(storageId: string): string {
    const bytes = this.mac("file-url", Buffer.from(storageId, "utf8")).subarray(0, 16);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = bytes.toString("hex");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}

/** `Digest: sha-256=<base64>` (the header the backend reads on upload); null when malformed. */
export function parseDigestHeader(value: string): Buffer | null {
  const match = /^sha-256=([A-Za-z0-9+/]+={0,2})$/.exec(value.trim());
  if (match === null) return null;
  const digest = Buffer.from(match[1], "base64");
  return digest.length === 32 ? digest : null;
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * A `Range` header against a file of `size` bytes: one range (the backend serves only one, as S3
 * does), "multiple" (answered 416 by the backend), "unsatisfiable", or null to serve it all.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | "multiple" | "unsatisfiable" | null {
  if (header === undefined) return null;
  const match = /^bytes=(.+)$/i.exec(header.trim());
  if (match === null) return null; // not a byte range: ignored, the whole file is sent
  const specs = match[1].split(",").map((s) => s.trim());
  if (specs.length !== 1) return "multiple";
  const spec = /^(\d*)-(\d*)$/.exec(specs[0]);
  if (spec === null || (spec[1] === "" && spec[2] === "")) return null;
  if (spec[1] === "") {
    const suffix = Number(spec[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(spec[1]);
  const end = spec[2] === "" ? size - 1 : Math.min(Number(spec[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}
