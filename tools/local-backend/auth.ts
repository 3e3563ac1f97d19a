/**
 * User authentication as Convex's backend does it: a `Bearer` JWT is checked against the auth
 * providers declared in the functions directory's `auth.config.ts`, and either becomes the
 * identity the function sees or is refused with 401 `{code, message}`. It is never treated as
 * anonymous.
 *
 * Behaviour follows the open-source backend (crates/authentication/src/lib.rs `validate_id_token`,
 * crates/common/src/auth.rs `AuthInfo`, crates/keybroker/src/broker.rs `UserIdentity`):
 *
 * 1. The payload is read unverified to route the token: `iss` is required, and the first provider
 *    whose issuer (or OIDC domain) matches `iss` (trailing `/` ignored, `https://` added to a bare
 *    host) and whose `applicationID`, when set, is among the token's audiences is chosen. None:
 *    401 `NoAuthProvider`.
 * 2. `type: "customJwt"`: the JWKS comes from `jwks` (an http(s) URL answered with
 *    `application/json` or `application/jwk-set+json`, or a `data:` URL); the header's `alg`
 *    must be the provider's `algorithm` (RS256 or ES256) and its `kid` must name a key of the
 *    set; the signature is checked; then `iss`, `aud` (when `applicationID` is set), and `exp`,
 *    `nbf`, `iat` with 5 s of clock skew; `sub` and `exp` are required. Failures: 401
 *    `InvalidAuthHeader`.
 * 3. OIDC (`domain` + `applicationID`): discovery at `<iss>/.well-known/openid-configuration`
 *    (its `issuer` must equal `iss`), keys from its `jwks_uri`; RS256 or EdDSA (Ed25519); `iss`
 *    equal to the discovered issuer; `aud` must contain `applicationID` and nothing else; `exp`
 *    (no skew) and `iat` are required. Discovery failures: `AuthProviderDiscoveryFailed` (400, or
 *    the provider's 401/403/404); verification failures: 401 `Unauthenticated`.
 *
 * Key sets and discovery documents are cached for `cacheTtlMs` (60 s); a `kid` missing from a
 * cached set causes a refetch (spaced at least a second apart per URL: a later one waits), so a
 * rotated key is accepted without a restart and made-up kids cannot make it fetch in a loop.
 * Signatures are checked with Node's `crypto`; no JWT library is involved.
 */
import {
  createPublicKey,
  verify as verifySignature,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import { existsSync } from "node:fs";
import { STATUS_CODES } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export type SignatureAlgorithm = "RS256" | "ES256";

export type AuthProvider =
  | {
      type: "customJwt";
      issuer: string;
      jwks: string;
      algorithm: SignatureAlgorithm;
      applicationID: string | null;
    }
  | { type: "oidc"; domain: string; applicationID: string };

/** The identity a function sees (`ctx.auth.getUserIdentity()`), as the backend builds it. */
export type UserIdentity = {
  tokenIdentifier: string;
  issuer: string;
  subject: string;
} & Record<string, unknown>;

/** A refusal, with the backend's HTTP status and `{code, message}`. */
export class AuthError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const unauthenticated = (code: string, message: string): AuthError =>
  new AuthError(401, code, message);

// --- auth.config.ts --------------------------------------------------------------------------

/** The file names Convex reads the auth configuration from, in the functions directory. */
const CONFIG_FILES = ["auth.config.ts", "auth.config.js", "auth.config.mts", "auth.config.mjs"];

/** Like the backend's `deserialize_issuer_url`: adds `https://` to a bare host, checks it. */
export function normalizeIssuerUrl(original: string, what: string): string {
  const problem = (why: string): Error =>
    new Error(`Invalid provider ${what} URL ${JSON.stringify(original)}: ${why}`);
  if (original.startsWith('"')) throw problem('starts with a double quote (")');
  const hadScheme = /^\w+:\/\//.test(original);
  const url = hadScheme ? original : `https://${original}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (e) {
    throw problem(e instanceof Error ? e.message : String(e));
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw problem("scheme should be http or https");
  }
  if (!hadScheme) {
    const host = parsed.hostname;
    const tld = host.includes(".") ? (host.split(".").pop() as string) : "";
    if (host !== "localhost" && !/^[a-z]{2,63}$/i.test(tld)) {
      throw problem("Does not look like a URL (must have a scheme or end with a top-level domain)");
    }
  }
  return url;
}

function describeValue(value: unknown): string {
  return value === undefined
    ? "undefined (is an environment variable it reads unset?)"
    : JSON.stringify(value);
}

/**
 * Checks an `auth.config.ts` default export the way the backend deserializes it
 * (`SerializedAuthConfig`): `{providers: [...]}`, each either `{type: "customJwt", issuer, jwks,
 * algorithm, applicationID?}` or an OIDC provider `{domain, applicationID}`.
 */
export function parseAuthConfig(config: unknown): AuthProvider[] {
  if (
    config === null ||
    typeof config !== "object" ||
    !Array.isArray((config as { providers?: unknown }).providers)
  ) {
    throw new Error("auth config: the default export must be an object with a `providers` array");
  }
  const providers = (config as { providers: unknown[] }).providers;
  return providers.map((raw, i): AuthProvider => {
    const where = `auth config: provider ${i}`;
    if (raw === null || typeof raw !== "object") throw new Error(`${where} must be an object`);
    const p = raw as Record<string, unknown>;
    const str = (key: string, optional = false): string | null => {
      const value = p[key];
      if (value === undefined && optional) return null;
      if (typeof value !== "string") {
        throw new Error(`${where}: \`${key}\` must be a string, got ${describeValue(value)}`);
      }
      return value;
    };
    if (p.type === "customJwt") {
      const algorithm = str("algorithm") as string;
      if (algorithm !== "RS256" && algorithm !== "ES256") {
        throw new Error(
          `${where}: Invalid signature algorithm (only RS256 and ES256 are supported): ${algorithm}`,
        );
      }
      return {
        type: "customJwt",
        issuer: normalizeIssuerUrl(str("issuer") as string, "issuer"),
        jwks: str("jwks") as string,
        algorithm,
        applicationID: str("applicationID", true),
      };
    }
    return {
      type: "oidc",
      domain: normalizeIssuerUrl(str("domain") as string, "domain"),
      applicationID: str("applicationID") as string,
    };
  });
}

/**
 * Imports `auth.config.ts` from the functions directory (its `process.env` lookups see this
 * process's environment, as a deployment's auth config sees its environment variables).
 * Returns null when there is none.
 */
export async function loadAuthConfig(
  functionsDir: string,
): Promise<{ file: string; providers: AuthProvider[] } | null> {
  const name = CONFIG_FILES.find((f) => existsSync(join(functionsDir, f)));
  if (name === undefined) return null;
  const file = join(functionsDir, name);
  let exported: { default?: unknown };
  try {
    exported = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (e) {
    throw new Error(`failed to load ${file}: ${String(e)}`, { cause: e });
  }
  try {
    return { file, providers: parseAuthConfig(exported.default) };
  } catch (e) {
    throw new Error(`${file}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

// --- Tokens ------------------------------------------------------------------------------------

interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: Buffer;
  signature: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string): Buffer | null {
  return BASE64URL.test(segment) ? Buffer.from(segment, "base64url") : null;
}

function parseObject(bytes: Buffer | null): Record<string, unknown> | null {
  if (bytes === null) return null;
  try {
    const value: unknown = JSON.parse(bytes.toString("utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** Splits a compact JWS; null when it is not one (three base64url parts, JSON header and payload). */
export function decodeJwt(token: string): DecodedJwt | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const header = parseObject(decodeSegment(parts[0]));
  const payload = parseObject(decodeSegment(parts[1]));
  const signature = decodeSegment(parts[2]);
  if (header === null || payload === null || signature === null) return null;
  return { header, payload, signingInput: Buffer.from(`${parts[0]}.${parts[1]}`), signature };
}

function audiencesOf(payload: Record<string, unknown>): string[] {
  const aud = payload.aud;
  if (typeof aud === "string") return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === "string");
  return [];
}

const withProtocol = (iss: string): string =>
  iss.startsWith("https://") || iss.startsWith("http://") ? iss : `https://${iss}`;
const trimSlashes = (s: string): string => s.replace(/\/+$/, "");

/** `AuthInfo::matches_token`. */
export function providerMatches(provider: AuthProvider, audiences: string[], iss: string): boolean {
  const applicationID = provider.applicationID;
  if (applicationID !== null && !audiences.includes(applicationID)) return false;
  const domain = provider.type === "oidc" ? provider.domain : provider.issuer;
  return trimSlashes(domain) === trimSlashes(withProtocol(iss));
}

function noProviderMessage(providers: AuthProvider[]): string {
  if (providers.length === 0) {
    return (
      "No auth provider found matching the given token (no providers configured). " +
      "Check convex/auth.config.ts."
    );
  }
  const listed = providers.map((p) =>
    p.type === "oidc"
      ? `OIDC(domain=${p.domain}, app_id=${p.applicationID})`
      : `CustomJWT(issuer=${p.issuer}, app_id=${p.applicationID ?? "none"})`,
  );
  return (
    "No auth provider found matching the given token. Check that your JWT's issuer and " +
    `audience match one of your configured providers: [${listed.join(", ")}]`
  );
}

// --- Keys ----------------------------------------------------------------------------------------

type JwsAlgorithm = "RS256" | "ES256" | "EdDSA";

/** Whether a JWK can check signatures of `alg` (key type, curve, `alg` and `use` if present). */
function keyFits(jwk: JsonWebKey, alg: JwsAlgorithm): boolean {
  if (jwk.use !== undefined && jwk.use !== "sig") return false;
  if (typeof jwk.alg === "string" && jwk.alg !== alg) return false;
  switch (alg) {
    case "RS256":
      return jwk.kty === "RSA";
    case "ES256":
      return jwk.kty === "EC" && jwk.crv === "P-256";
    case "EdDSA":
      return jwk.kty === "OKP" && jwk.crv === "Ed25519";
  }
}

function checkSignature(jwk: JsonWebKey, alg: JwsAlgorithm, decoded: DecodedJwt): boolean {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk, format: "jwk" });
  } catch {
    return false;
  }
  try {
    switch (alg) {
      case "RS256":
        return verifySignature("sha256", decoded.signingInput, key, decoded.signature);
      case "ES256":
        return verifySignature(
          "sha256",
          decoded.signingInput,
          { key, dsaEncoding: "ieee-p1363" },
          decoded.signature,
        );
      case "EdDSA":
        return verifySignature(null, decoded.signingInput, key, decoded.signature);
    }
  } catch {
    return false;
  }
}

function parseJwks(body: unknown): JsonWebKey[] | null {
  if (body === null || typeof body !== "object") return null;
  const keys = (body as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return null;
  return keys.filter((k): k is JsonWebKey => k !== null && typeof k === "object");
}

/** Decodes a `data:` URL (RFC 2397): base64 or percent-encoded; null when it is not one. */
export function decodeDataUrl(url: string): Buffer | null {
  if (!url.startsWith("data:")) return null;
  const comma = url.indexOf(",");
  if (comma < 0) return null;
  const meta = url.slice(5, comma);
  const data = url.slice(comma + 1);
  if (/;base64$/i.test(meta)) return Buffer.from(decodeURIComponent(data), "base64");
  try {
    return Buffer.from(decodeURIComponent(data), "utf8");
  } catch {
    return null;
  }
}

const JSON_MEDIA_TYPES = ["application/json", "application/jwk-set+json"];

function isJwksContentType(value: string | null): boolean {
  if (value === null) return false;
  const [essence, ...params] = value.split(";").map((s) => s.trim().toLowerCase());
  if (!JSON_MEDIA_TYPES.includes(essence)) return false;
  const charset = params.find((p) => p.startsWith("charset="));
  return charset === undefined || charset.slice(8).replace(/"/g, "") === "utf-8";
}

export interface VerifierOptions {
  /** Current time in ms (tests pin it). */
  now?: () => number;
  /** The fetch used for JWKS and discovery (tests replace it). */
  fetch?: typeof globalThis.fetch;
  /** How long a fetched key set or discovery document is reused (default 60 s). */
  cacheTtlMs?: number;
  /** The least time between two refetches of one URL for an unknown `kid` (default 1 s). */
  refetchIntervalMs?: number;
  /** Per-request timeout (default 5 s). */
  fetchTimeoutMs?: number;
}

interface Cached<T> {
  value: T;
  fetchedAt: number;
  /** When it was last refetched for an unknown `kid` (rate-limits those refetches). */
  refreshedAt?: number;
}

/** Seconds of clock skew allowed on `exp`, `nbf` and `iat` for custom JWTs (the backend's epsilon). */
export const CLOCK_SKEW_SECONDS = 5;

/** Claims the backend consumes or drops for an OIDC token; every other claim is a custom claim. */
const OIDC_NOT_CUSTOM = new Set([
  // IdTokenClaims fields
  "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash",
  // StandardClaims
  "sub", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
  "profile", "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo",
  "locale", "phone_number", "phone_number_verified", "address", "updated_at",
  // dropped by Convex because they change on every refresh
  "jti", "nbf", "fva",
]); // prettier-ignore

/** Registered JWT claims (biscuit's `RegisteredClaims`); a custom JWT's other claims are custom. */
const JWT_REGISTERED = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]);

/** `extract_custom_jwt_claims`: nested objects become dotted keys, anything else stays. */
function flattenClaims(
  claims: Record<string, unknown>,
  prefix = "",
  out: Record<string, unknown> = {},
): Record<string, unknown> {
  for (const [key, value] of Object.entries(claims)) {
    const name = prefix === "" ? key : `${prefix}.${key}`;
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      flattenClaims(value as Record<string, unknown>, name, out);
    } else {
      out[name] = value;
    }
  }
  return out;
}

/** `UserIdentity::from_custom_jwt`: `tokenIdentifier`, `issuer`, `subject` and the custom claims. */
export function customJwtIdentity(payload: Record<string, unknown>): UserIdentity {
  const iss = payload.iss as string;
  const sub = payload.sub as string;
  const custom: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(payload)) {
    if (!JWT_REGISTERED.has(key) && key !== "fva") custom[key] = value;
  }
  return { ...flattenClaims(custom), tokenIdentifier: `${iss}|${sub}`, issuer: iss, subject: sub };
}

const stringClaim = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const boolClaim = (v: unknown): boolean | undefined => (typeof v === "boolean" ? v : undefined);

/** `UserIdentity::from_token`: the OIDC standard claims under their `UserIdentity` names. */
export function oidcIdentity(payload: Record<string, unknown>): UserIdentity {
  const iss = payload.iss as string;
  const sub = payload.sub as string;
  const address = payload.address;
  const updatedAt = payload.updated_at;
  const typed: Record<string, unknown> = {
    name: stringClaim(payload.name),
    givenName: stringClaim(payload.given_name),
    familyName: stringClaim(payload.family_name),
    nickname: stringClaim(payload.nickname),
    preferredUsername: stringClaim(payload.preferred_username),
    profileUrl: stringClaim(payload.profile),
    pictureUrl: stringClaim(payload.picture),
    websiteUrl: stringClaim(payload.website),
    email: stringClaim(payload.email),
    emailVerified: boolClaim(payload.email_verified),
    gender: stringClaim(payload.gender),
    birthday: stringClaim(payload.birthdate),
    timezone: stringClaim(payload.zoneinfo),
    language: stringClaim(payload.locale),
    phoneNumber: stringClaim(payload.phone_number),
    phoneNumberVerified: boolClaim(payload.phone_number_verified),
    address:
      address !== null && typeof address === "object"
        ? stringClaim((address as { formatted?: unknown }).formatted)
        : undefined,
    updatedAt:
      typeof updatedAt === "number"
        ? new Date(updatedAt * 1000).toISOString().replace(/\.000Z$/, "+00:00")
        : undefined,
  };
  const custom: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(payload)) {
    const base = key.split("#")[0]; // localized variants such as `name#fr`
    if (!OIDC_NOT_CUSTOM.has(key) && !OIDC_NOT_CUSTOM.has(base)) custom[key] = value;
  }
  const identity: Record<string, unknown> = {
    ...custom,
    tokenIdentifier: `${iss}|${sub}`,
    issuer: iss,
    subject: sub,
  };
  for (const [key, value] of Object.entries(typed)) if (value !== undefined) identity[key] = value;
  return identity as UserIdentity;
}

/** Verifies user tokens against the configured providers (null: there is no auth.config.ts). */
export class TokenVerifier {
  private readonly now: () => number;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly cacheTtlMs: number;
  private readonly refetchIntervalMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly cache = new Map<string, Cached<unknown>>();
  private readonly refreshing = new Map<string, Promise<unknown>>();

  constructor(
    readonly providers: AuthProvider[],
    options: VerifierOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.refetchIntervalMs = options.refetchIntervalMs ?? 1_000;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? 5_000;
  }

  /** The identity for `token`, or an AuthError with the backend's status, code and message. */
  async verify(token: string): Promise<UserIdentity> {
    const decoded = decodeJwt(token);
    if (decoded === null) {
      throw unauthenticated(
        "InvalidAuthHeader",
        "Could not parse JWT payload. Check that the token is a valid JWT format with three " +
          "base64-encoded parts separated by dots.",
      );
    }
    const iss = decoded.payload.iss;
    if (typeof iss !== "string") {
      throw unauthenticated(
        "InvalidAuthHeader",
        "Missing issuer claim ('iss') in JWT payload. The JWT must include an 'iss' claim that " +
          "matches one of your configured auth providers.",
      );
    }
    const audiences = audiencesOf(decoded.payload);
    const provider = this.providers.find((p) => providerMatches(p, audiences, iss));
    if (provider === undefined) {
      throw unauthenticated("NoAuthProvider", noProviderMessage(this.providers));
    }
    return provider.type === "customJwt"
      ? this.verifyCustomJwt(provider, decoded)
      : this.verifyOidc(provider, decoded);
  }

  // --- customJwt ---

  private async verifyCustomJwt(
    provider: Extract<AuthProvider, { type: "customJwt" }>,
    decoded: DecodedJwt,
  ): Promise<UserIdentity> {
    const invalid = (message: string): AuthError => unauthenticated("InvalidAuthHeader", message);
    const kid = decoded.header.kid;
    const decodeFailure = (): AuthError =>
      invalid(
        typeof kid === "string"
          ? `Could not decode token. The JWT's 'kid' (key ID) header is '${kid}', does this key ` +
              "match any key in the provider's JWKS?"
          : "Could not decode token. JWT may be missing a 'kid' (key ID) header.",
      );
    const keys = await this.customJwks(provider.jwks, false);
    if (decoded.header.alg !== provider.algorithm || typeof kid !== "string") throw decodeFailure();
    let jwk = keys.find((k) => k.kid === kid);
    if (jwk === undefined) {
      const fresh = await this.customJwks(provider.jwks, true);
      jwk = fresh.find((k) => k.kid === kid);
    }
    if (jwk === undefined || !keyFits(jwk, provider.algorithm)) throw decodeFailure();
    if (!checkSignature(jwk, provider.algorithm, decoded)) throw decodeFailure();

    const payload = decoded.payload;
    const iss = payload.iss as string;
    if (trimSlashes(withProtocol(iss)) !== trimSlashes(provider.issuer)) {
      throw invalid(`Invalid issuer: ${iss} != ${provider.issuer}`);
    }
    if (provider.applicationID !== null) {
      if (payload.aud === undefined) {
        throw invalid(
          "Missing audience claim ('aud') in JWT payload. The JWT must include an 'aud' claim " +
            "that matches your configured application ID.",
        );
      }
      const audiences = audiencesOf(payload);
      if (!audiences.includes(provider.applicationID)) {
        const shown = audiences.map((a) => JSON.stringify(a)).join(", ");
        throw invalid(`Invalid audience: ${provider.applicationID} not in [${shown}]`);
      }
    }
    const temporal = this.temporalProblem(payload, CLOCK_SKEW_SECONDS, CLOCK_SKEW_SECONDS);
    if (temporal !== null) throw invalid(`Could not validate token: ${temporal}`);
    if (typeof payload.sub !== "string") throw invalid("Missing subject");
    if (typeof payload.exp !== "number") throw invalid("Missing expiry");
    return customJwtIdentity(payload);
  }

  private async customJwks(url: string, refresh: boolean): Promise<JsonWebKey[]> {
    const invalid = (message: string): AuthError => unauthenticated("InvalidAuthHeader", message);
    const inline = decodeDataUrl(url);
    let body: unknown;
    if (inline !== null) {
      try {
        body = JSON.parse(inline.toString("utf8"));
      } catch {
        body = null;
      }
    } else {
      body = await this.cachedJson(url, refresh, async () => {
        let response: Response;
        try {
          response = await this.get(url);
        } catch (e) {
          throw invalid(
            `Could not fetch JWKS from URL '${url}': ${describeFetchError(e)}. Check that the ` +
              "URL is correct and accessible.",
          );
        }
        if (response.status !== 200) {
          throw invalid(
            `Could not fetch JWKS from URL '${url}': HTTP ${response.status} ` +
              `${STATUS_CODES[response.status] ?? "Unknown"}. Check that the URL is correct and accessible.`,
          );
        }
        const contentType = response.headers.get("content-type");
        if (!isJwksContentType(contentType)) {
          throw invalid(
            `Invalid Content-Type '${contentType ?? "unknown"}' when fetching JWKS from '${url}'. ` +
              "Expected 'application/json' or 'application/jwk-set+json'.",
          );
        }
        const text = await response.text();
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return null;
        }
      });
    }
    const keys = parseJwks(body);
    if (keys === null) {
      throw invalid(
        `Invalid JWKS response body from '${url}'. The response is not valid JSON or doesn't ` +
          "match the expected JWKS format.",
      );
    }
    return keys;
  }

  // --- OIDC ---

  private async verifyOidc(
    provider: Extract<AuthProvider, { type: "oidc" }>,
    decoded: DecodedJwt,
  ): Promise<UserIdentity> {
    const iss = decoded.payload.iss as string;
    const { issuer, jwksUri } = await this.discover(iss);
    const refuse = (): AuthError =>
      unauthenticated(
        "Unauthenticated",
        "Could not verify OIDC token claim. Check that the token signature is valid and the " +
          "token hasn't expired.",
      );
    const { header, payload } = decoded;
    const typ = header.typ;
    if (
      typ !== undefined &&
      !(
        typeof typ === "string" &&
        ["jwt", "application/jwt", "application/jose"].includes(typ.toLowerCase())
      )
    ) {
      throw refuse();
    }
    if (header.cty !== undefined || header.crit !== undefined) throw refuse();
    if (iss !== issuer) throw refuse();
    const audiences = audiencesOf(payload);
    if (
      !audiences.includes(provider.applicationID) ||
      audiences.some((a) => a !== provider.applicationID)
    ) {
      throw refuse();
    }
    const alg = header.alg;
    if (alg !== "RS256" && alg !== "EdDSA") throw refuse();
    const pick = (keys: JsonWebKey[]): JsonWebKey[] =>
      keys.filter(
        (k) => keyFits(k, alg) && (typeof header.kid !== "string" || k.kid === header.kid),
      );
    let candidates = pick(await this.oidcJwks(jwksUri, false));
    if (candidates.length === 0 && typeof header.kid === "string") {
      candidates = pick(await this.oidcJwks(jwksUri, true));
    }
    if (candidates.length !== 1) throw refuse(); // none, or ambiguous without a `kid`
    if (!checkSignature(candidates[0], alg, decoded)) throw refuse();
    if (typeof payload.sub !== "string" || typeof payload.iat !== "number") throw refuse();
    if (typeof payload.exp !== "number") throw refuse();
    if (this.temporalProblem(payload, 0, CLOCK_SKEW_SECONDS) !== null) throw refuse();
    return oidcIdentity(payload);
  }

  private async discover(iss: string): Promise<{ issuer: string; jwksUri: string }> {
    const failed = (detail = "", status = 400): AuthError =>
      new AuthError(
        status,
        "AuthProviderDiscoveryFailed",
        `Auth provider discovery of ${iss} failed${detail}`,
      );
    const url = `${iss.endsWith("/") ? iss : `${iss}/`}.well-known/openid-configuration`;
    const document = await this.cachedJson(url, false, async () => {
      let response: Response;
      try {
        response = await this.get(url);
      } catch {
        throw failed();
      }
      if (response.status !== 200) {
        const body = await response.text().catch(() => "");
        const status = [401, 403, 404].includes(response.status) ? response.status : 400;
        throw failed(`: ${response.status} ${body}`, status);
      }
      try {
        return JSON.parse(await response.text()) as unknown;
      } catch {
        throw failed();
      }
    });
    const metadata = (document ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
    if (metadata.issuer !== iss || typeof metadata.jwks_uri !== "string") throw failed();
    return { issuer: metadata.issuer, jwksUri: metadata.jwks_uri };
  }

  private async oidcJwks(url: string, refresh: boolean): Promise<JsonWebKey[]> {
    const body = await this.cachedJson(url, refresh, async () => {
      const failed = new AuthError(
        400,
        "AuthProviderDiscoveryFailed",
        `Auth provider discovery failed: could not fetch JWKS from ${url}`,
      );
      let response: Response;
      try {
        response = await this.get(url);
      } catch {
        throw failed;
      }
      if (response.status !== 200 || !isJwksContentType(response.headers.get("content-type"))) {
        throw failed;
      }
      try {
        return JSON.parse(await response.text()) as unknown;
      } catch {
        throw failed;
      }
    });
    return parseJwks(body) ?? [];
  }

  // --- shared ---

  /** `exp`, `nbf` and `iat` against now, with the given skews (seconds); null when all fine. */
  private temporalProblem(
    payload: Record<string, unknown>,
    expSkew: number,
    otherSkew: number,
  ): string | null {
    const now = this.now() / 1000;
    const at = (seconds: number): string =>
      new Date(seconds * 1000)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, " UTC");
    const { exp, nbf, iat } = payload;
    for (const [name, value] of Object.entries({ exp, nbf, iat })) {
      if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value))) {
        return `Invalid '${name}' claim: ${JSON.stringify(value)}`;
      }
    }
    if (typeof exp === "number" && now - expSkew >= exp) return `Token expired at ${at(exp)}`;
    if (typeof nbf === "number" && now + otherSkew < nbf)
      return `Token will be valid at ${at(nbf)}`;
    if (typeof iat === "number" && now + otherSkew < iat)
      return `Token issued in the future at ${at(iat)}`;
    return null;
  }

  private get(url: string): Promise<Response> {
    return this.fetchImpl(url, {
      headers: { Accept: "application/json" },
      redirect: "follow",
      signal: AbortSignal.timeout(this.fetchTimeoutMs),
    });
  }

  /**
   * `load()`'s value for `url`, reused for cacheTtlMs. `refresh` (an unknown `kid`) refetches,
   * but no sooner than refetchIntervalMs after the previous refresh of this URL (it waits out the
   * rest of the interval, and concurrent refreshes share one fetch): a rotated key is picked up
   * at once or within the interval, and tokens with made-up kids cannot make us fetch in a loop.
   * Failures are not cached.
   */
  private async cachedJson(
    url: string,
    refresh: boolean,
    load: () => Promise<unknown>,
  ): Promise<unknown> {
    const cached = this.cache.get(url);
    if (!refresh) {
      if (cached !== undefined && this.now() - cached.fetchedAt < this.cacheTtlMs) {
        return cached.value;
      }
      return this.fetchInto(url, load, false);
    }
    const pending = this.refreshing.get(url);
    if (pending !== undefined) return pending;
    const refreshed = (async () => {
      const since = cached?.refreshedAt === undefined ? Infinity : this.now() - cached.refreshedAt;
      if (since < this.refetchIntervalMs) {
        await new Promise((wake) => setTimeout(wake, this.refetchIntervalMs - since));
      }
      return this.fetchInto(url, load, true);
    })();
    this.refreshing.set(url, refreshed);
    try {
      return await refreshed;
    } finally {
      this.refreshing.delete(url);
    }
  }

  private async fetchInto(
    url: string,
    load: () => Promise<unknown>,
    refresh: boolean,
  ): Promise<unknown> {
    const value = await load();
    const now = this.now();
    this.cache.set(url, { value, fetchedAt: now, ...(refresh ? { refreshedAt: now } : {}) });
    return value;
  }
}

function describeFetchError(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}
