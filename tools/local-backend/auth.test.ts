/**
 * JWT verification (auth.ts) against keys made here and a fake fetch: each check the backend
 * makes refuses the token with its status, code and message, and a good token gives the
 * identity Convex would.
 */
import { generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from "node:crypto";
import { beforeEach, describe, expect, test } from "vitest";
import {
  AuthError,
  normalizeIssuerUrl,
  parseAuthConfig,
  TokenVerifier,
  type AuthProvider,
} from "./auth.js";

const NOW_MS = 1_800_000_000_000;
const NOW = NOW_MS / 1000;
const ISSUER = "https://issuer.example.com";
const JWKS_URL = "https://issuer.example.com/.well-known/jwks.json";

interface Key {
  privateKey: KeyObject;
  jwk: JsonWebKey;
}

/** RSA key generation is slow: each distinct (name) key is made once and reused. */
const rsaKeys = new Map<string, Key>();
function rsaKey(kid: string, name = kid): Key {
  let key = rsaKeys.get(name);
  if (key === undefined) {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    key = { privateKey, jwk: { ...publicKey.export({ format: "jwk" }), alg: "RS256", use: "sig" } };
    rsaKeys.set(name, key);
  }
  return { privateKey: key.privateKey, jwk: { ...key.jwk, kid } };
}

function ecKey(kid: string): Key {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, jwk: { ...publicKey.export({ format: "jwk" }), kid, alg: "ES256" } };
}

function edKey(kid: string): Key {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { privateKey, jwk: { ...publicKey.export({ format: "jwk" }), kid } };
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");

function jwt(
  key: Key | null,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
): string {
  const alg = (header.alg as string | undefined) ?? (key?.jwk.alg as string | undefined) ?? "EdDSA";
  const fullHeader = { alg, typ: "JWT", kid: key?.jwk.kid, ...header };
  const input = `${b64(fullHeader)}.${b64(payload)}`;
  if (key === null) return `${input}.`;
  const signature =
    alg === "ES256"
      ? sign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" })
      : sign(alg === "EdDSA" ? null : "sha256", Buffer.from(input), key.privateKey);
  return `${input}.${signature.toString("base64url")}`;
}

const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  iss: ISSUER,
  sub: "user-1",
  aud: "my-app",
  iat: NOW - 10,
  exp: NOW + 600,
  ...extra,
});

/** A fetch that serves fixed JSON documents by URL and counts requests. */
class FakeWeb {
  documents = new Map<string, { body: unknown; status?: number; contentType?: string }>();
  requests: string[] = [];
  fetch = (async (input: string | URL | Request): Promise<Response> => {
    const url = String(input);
    this.requests.push(url);
    const doc = this.documents.get(url);
    if (doc === undefined)
      return new Response("not here", { status: 404, statusText: "Not Found" });
    return new Response(JSON.stringify(doc.body), {
      status: doc.status ?? 200,
      headers: { "Content-Type": doc.contentType ?? "application/json" },
    });
  }) as typeof globalThis.fetch;
  serveKeys(url: string, ...keys: Key[]): void {
    this.documents.set(url, { body: { keys: keys.map((k) => k.jwk) } });
  }
}

const customJwt = (
  extra: Partial<Extract<AuthProvider, { type: "customJwt" }>> = {},
): AuthProvider => ({
  type: "customJwt",
  issuer: ISSUER,
  jwks: JWKS_URL,
  algorithm: "RS256",
  applicationID: "my-app",
  ...extra,
});

async function refusal(
  promise: Promise<unknown>,
): Promise<{ status: number; code: string; message: string }> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof AuthError) return { status: e.status, code: e.code, message: e.message };
    throw e;
  }
  throw new Error("the token was accepted");
}

describe("customJwt", () => {
  let web: FakeWeb;
  let rsa: Key;
  let now: number;
  const verifier = (providers: AuthProvider[] = [customJwt()]): TokenVerifier =>
    new TokenVerifier(providers, { fetch: web.fetch, now: () => now });

  beforeEach(() => {
    web = new FakeWeb();
    rsa = rsaKey("key-1");
    web.serveKeys(JWKS_URL, rsa);
    now = NOW_MS;
  });

  test("a good token gives the identity Convex builds: tokenIdentifier, issuer, subject, claims", async () => {
    const token = jwt(
      rsa,
      claims({ name: "Ada", email: "ada@example.com", org: { id: 7, role: "admin" }, jti: "x" }),
    );
    expect(await verifier().verify(token)).toEqual({
      tokenIdentifier: `${ISSUER}|user-1`,
      issuer: ISSUER,
      subject: "user-1",
      name: "Ada",
      email: "ada@example.com",
      "org.id": 7,
      "org.role": "admin",
    });
  });

  test("ES256 keys work when the provider says ES256", async () => {
    const ec = ecKey("ec-1");
    web.serveKeys(JWKS_URL, ec);
    const identity = await verifier([customJwt({ algorithm: "ES256" })]).verify(jwt(ec, claims()));
    expect(identity.subject).toBe("user-1");
  });

  test("a bad signature is refused, not treated as anonymous", async () => {
    const other = rsaKey("key-1", "impostor"); // same kid, different key
    expect(await refusal(verifier().verify(jwt(other, claims())))).toEqual({
      status: 401,
      code: "InvalidAuthHeader",
      message:
        "Could not decode token. The JWT's 'kid' (key ID) header is 'key-1', does this key match " +
        "any key in the provider's JWKS?",
    });
    const token = jwt(rsa, claims());
    const tampered = token.replace(/\.[^.]+\./, `.${b64(claims({ sub: "admin" }))}.`);
    expect((await refusal(verifier().verify(tampered))).code).toBe("InvalidAuthHeader");
  });

  test("a wrong issuer or audience matches no provider", async () => {
    const message =
      "No auth provider found matching the given token. Check that your JWT's issuer and " +
      `audience match one of your configured providers: [CustomJWT(issuer=${ISSUER}, app_id=my-app)]`;
    for (const extra of [
      { iss: "https://evil.example.com" },
      { aud: "other-app" },
      { aud: undefined },
    ]) {
      expect(await refusal(verifier().verify(jwt(rsa, claims(extra))))).toEqual({
        status: 401,
        code: "NoAuthProvider",
        message,
      });
    }
  });

  test("the audience may be a list; without applicationID it is not checked", async () => {
    expect((await verifier().verify(jwt(rsa, claims({ aud: ["x", "my-app"] })))).subject).toBe(
      "user-1",
    );
    const open = verifier([customJwt({ applicationID: null })]);
    expect((await open.verify(jwt(rsa, claims({ aud: undefined })))).subject).toBe("user-1");
  });

  test("an issuer given without a scheme or with a trailing slash still matches", async () => {
    const token = jwt(rsa, claims({ iss: "issuer.example.com/" }));
    const identity = await verifier().verify(token);
    expect(identity.issuer).toBe("issuer.example.com/"); // the token's own `iss`
    expect(identity.tokenIdentifier).toBe("issuer.example.com/|user-1");
  });

  test("an expired token is refused; 5 s of clock skew is allowed", async () => {
    const refused = await refusal(verifier().verify(jwt(rsa, claims({ exp: NOW - 6 }))));
    expect(refused.status).toBe(401);
    expect(refused.code).toBe("InvalidAuthHeader");
    expect(refused.message).toBe(
      "Could not validate token: Token expired at 2027-01-15 07:59:54 UTC",
    );
    expect((await verifier().verify(jwt(rsa, claims({ exp: NOW - 4 })))).subject).toBe("user-1");
  });

  test("a token not yet valid (nbf, iat in the future) is refused", async () => {
    for (const extra of [{ nbf: NOW + 60 }, { iat: NOW + 60 }]) {
      const refused = await refusal(verifier().verify(jwt(rsa, claims(extra))));
      expect(refused.code).toBe("InvalidAuthHeader");
      expect(refused.message).toMatch(
        /^Could not validate token: Token (will be valid|issued in the future)/,
      );
    }
    expect((await verifier().verify(jwt(rsa, claims({ nbf: NOW + 3 })))).subject).toBe("user-1");
  });

  test("sub and exp are required", async () => {
    expect((await refusal(verifier().verify(jwt(rsa, claims({ sub: undefined }))))).message).toBe(
      "Missing subject",
    );
    expect((await refusal(verifier().verify(jwt(rsa, claims({ exp: undefined }))))).message).toBe(
      "Missing expiry",
    );
  });

  test("an unknown kid refetches the key set: a rotated key is accepted at once", async () => {
    const v = verifier();
    await v.verify(jwt(rsa, claims()));
    expect(web.requests).toEqual([JWKS_URL]);
    await v.verify(jwt(rsa, claims()));
    expect(web.requests).toHaveLength(1); // cached

    const rotated = rsaKey("key-2");
    web.serveKeys(JWKS_URL, rsa, rotated);
    // Inside the cache lifetime: the unknown kid alone makes it refetch, at once.
    expect((await v.verify(jwt(rotated, claims()))).subject).toBe("user-1");
    expect(web.requests).toHaveLength(2);
  });

  test("refetches for unknown kids are spaced out and shared, never a loop", async () => {
    const v = new TokenVerifier([customJwt()], {
      fetch: web.fetch,
      now: () => now,
      refetchIntervalMs: 40,
    });
    await v.verify(jwt(rsa, claims()));
    const stranger = jwt(rsaKey("key-3"), claims());
    const started = performance.now();
    const refusals = await Promise.all([1, 2, 3].map(() => refusal(v.verify(stranger))));
    expect(refusals.every((r) => r.message.includes("'kid' (key ID) header is 'key-3'"))).toBe(
      true,
    );
    expect(web.requests).toHaveLength(2); // three tokens, one refetch
    await refusal(v.verify(stranger));
    expect(web.requests).toHaveLength(3);
    expect(performance.now() - started).toBeGreaterThanOrEqual(35); // the second waited
  });

  test("the key set is refetched once the cache expires", async () => {
    const v = verifier();
    await v.verify(jwt(rsa, claims()));
    now += 61_000;
    await v.verify(jwt(rsa, claims()));
    expect(web.requests).toHaveLength(2);
  });

  test("an algorithm other than the provider's is refused, including alg none", async () => {
    const ec = ecKey("key-1");
    web.serveKeys(JWKS_URL, rsa, ec);
    for (const token of [
      jwt(ec, claims()), // ES256 token, RS256 provider
      jwt(null, claims(), { alg: "none", kid: "key-1" }),
      jwt(rsa, claims(), { alg: "HS256" }),
    ]) {
      const refused = await refusal(verifier().verify(token));
      expect(refused.code).toBe("InvalidAuthHeader");
      expect(refused.message).toMatch(/^Could not decode token/);
    }
  });

  test("a token without a kid is refused", async () => {
    const refused = await refusal(verifier().verify(jwt(rsa, claims(), { kid: undefined })));
    expect(refused.message).toBe(
      "Could not decode token. JWT may be missing a 'kid' (key ID) header.",
    );
  });

  test("malformed tokens are refused before any provider is asked", async () => {
    for (const token of [
      "not-a-jwt",
      "a.b",
      "####.####.####",
      `${b64({ alg: "RS256" })}.${b64([1])}.`,
    ]) {
      const refused = await refusal(verifier().verify(token));
      expect(refused).toMatchObject({ status: 401, code: "InvalidAuthHeader" });
      expect(refused.message).toMatch(/^Could not parse JWT payload/);
    }
    const noIssuer = await refusal(verifier().verify(jwt(rsa, claims({ iss: undefined }))));
    expect(noIssuer.message).toMatch(/^Missing issuer claim \('iss'\)/);
    expect(web.requests).toEqual([]);
  });

  test("with no providers every token is refused with the backend's hint", async () => {
    expect(await refusal(new TokenVerifier([]).verify(jwt(rsa, claims())))).toEqual({
      status: 401,
      code: "NoAuthProvider",
      message:
        "No auth provider found matching the given token (no providers configured). Check " +
        "convex/auth.config.ts.",
    });
  });

  test("a data: URL holds the key set inline, as Convex accepts", async () => {
    const inline = `data:text/plain;charset=utf-8;base64,${Buffer.from(JSON.stringify({ keys: [rsa.jwk] })).toString("base64")}`;
    const v = verifier([customJwt({ jwks: inline })]);
    expect((await v.verify(jwt(rsa, claims()))).subject).toBe("user-1");
    expect(web.requests).toEqual([]);
  });

  test("a key set that cannot be fetched or is not JSON is refused with the reason", async () => {
    web.documents.set(JWKS_URL, { body: { keys: [] }, status: 500 });
    expect((await refusal(verifier().verify(jwt(rsa, claims())))).message).toBe(
      `Could not fetch JWKS from URL '${JWKS_URL}': HTTP 500 Internal Server Error. Check that ` +
        "the URL is correct and accessible.",
    );
    web.documents.set(JWKS_URL, { body: { keys: [] }, contentType: "text/html" });
    expect((await refusal(verifier().verify(jwt(rsa, claims())))).message).toMatch(
      /^Invalid Content-Type 'text\/html' when fetching JWKS/,
    );
    web.documents.set(JWKS_URL, {
      body: { nokeys: true },
      contentType: "application/jwk-set+json",
    });
    expect((await refusal(verifier().verify(jwt(rsa, claims())))).message).toMatch(
      /^Invalid JWKS response body/,
    );
  });
});

describe("OIDC (domain + applicationID)", () => {
  const DOMAIN = "https://login.example.org";
  const CONFIG = `${DOMAIN}/.well-known/openid-configuration`;
  const KEYS = `${DOMAIN}/keys`;
  let web: FakeWeb;
  let rsa: Key;
  const provider: AuthProvider = { type: "oidc", domain: DOMAIN, applicationID: "client-1" };
  const oidcClaims = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
    claims({ iss: DOMAIN, aud: "client-1", ...extra });
  const verifier = (): TokenVerifier =>
    new TokenVerifier([provider], { fetch: web.fetch, now: () => NOW_MS });

  beforeEach(() => {
    web = new FakeWeb();
    rsa = rsaKey("oidc-1");
    web.documents.set(CONFIG, { body: { issuer: DOMAIN, jwks_uri: KEYS } });
    web.serveKeys(KEYS, rsa);
  });

  test("discovery finds the keys; standard claims get their UserIdentity names", async () => {
    const token = jwt(
      rsa,
      oidcClaims({
        name: "Ada Lovelace",
        given_name: "Ada",
        email: "ada@example.org",
        email_verified: true,
        picture: "https://example.org/ada.png",
        updated_at: 1_700_000_000,
        address: { formatted: "1 Analytical St" },
        nonce: "n",
        azp: "client-1",
        jti: "drop-me",
        "https://example.org/roles": ["admin"],
      }),
    );
    expect(await verifier().verify(token)).toEqual({
      tokenIdentifier: `${DOMAIN}|user-1`,
      issuer: DOMAIN,
      subject: "user-1",
      name: "Ada Lovelace",
      givenName: "Ada",
      email: "ada@example.org",
      emailVerified: true,
      pictureUrl: "https://example.org/ada.png",
      updatedAt: "2023-11-14T22:13:20+00:00",
      address: "1 Analytical St",
      "https://example.org/roles": ["admin"],
    });
    expect(web.requests).toEqual([CONFIG, KEYS]);
  });

  test("EdDSA (Ed25519) is accepted as the backend allows", async () => {
    const ed = edKey("ed-1");
    web.serveKeys(KEYS, ed);
    expect((await verifier().verify(jwt(ed, oidcClaims(), { alg: "EdDSA" }))).subject).toBe(
      "user-1",
    );
  });

  test("verification failures answer 401 Unauthenticated", async () => {
    const message =
      "Could not verify OIDC token claim. Check that the token signature is valid and the token " +
      "hasn't expired.";
    const tokens = [
      jwt(rsaKey("oidc-1", "impostor"), oidcClaims()), // wrong key
      jwt(rsa, oidcClaims({ exp: NOW - 1 })), // expired (no skew for OIDC)
      jwt(rsa, oidcClaims({ aud: ["client-1", "someone-else"] })), // an untrusted extra audience
      jwt(rsa, oidcClaims({ iat: undefined })),
      jwt(ecKey("oidc-1"), oidcClaims()), // ES256 is not allowed for OIDC
    ];
    for (const token of tokens) {
      expect(await refusal(verifier().verify(token))).toEqual({
        status: 401,
        code: "Unauthenticated",
        message,
      });
    }
  });

  test("a discovery document for another issuer is refused", async () => {
    web.documents.set(CONFIG, {
      body: { issuer: "https://elsewhere.example.org", jwks_uri: KEYS },
    });
    expect(await refusal(verifier().verify(jwt(rsa, oidcClaims())))).toEqual({
      status: 400,
      code: "AuthProviderDiscoveryFailed",
      message: `Auth provider discovery of ${DOMAIN} failed`,
    });
  });

  test("a provider that answers 404 to discovery gives 404 with its answer", async () => {
    web.documents.delete(CONFIG);
    expect(await refusal(verifier().verify(jwt(rsa, oidcClaims())))).toEqual({
      status: 404,
      code: "AuthProviderDiscoveryFailed",
      message: `Auth provider discovery of ${DOMAIN} failed: 404 not here`,
    });
  });
});

describe("auth.config.ts", () => {
  test("both provider forms are read as the backend deserializes them", () => {
    expect(
      parseAuthConfig({
        providers: [
          {
            type: "customJwt",
            issuer: "auth.example.com",
            jwks: "https://auth.example.com/jwks",
            algorithm: "ES256",
          },
          { domain: "https://clerk.example.dev/", applicationID: "convex" },
        ],
      }),
    ).toEqual([
      {
        type: "customJwt",
        issuer: "https://auth.example.com",
        jwks: "https://auth.example.com/jwks",
        algorithm: "ES256",
        applicationID: null,
      },
      { type: "oidc", domain: "https://clerk.example.dev/", applicationID: "convex" },
    ]);
  });

  test("mistakes stop the start with a message that names them", () => {
    expect(() => parseAuthConfig({})).toThrow(/`providers` array/);
    expect(() =>
      parseAuthConfig({
        providers: [
          { type: "customJwt", issuer: "https://a.example.com", jwks: "x", algorithm: "HS256" },
        ],
      }),
    ).toThrow("Invalid signature algorithm (only RS256 and ES256 are supported): HS256");
    expect(() =>
      parseAuthConfig({ providers: [{ domain: undefined, applicationID: "x" }] }),
    ).toThrow(
      /`domain` must be a string, got undefined \(is an environment variable it reads unset\?\)/,
    );
    expect(() => normalizeIssuerUrl("notahost", "domain")).toThrow(/Does not look like a URL/);
    expect(() => normalizeIssuerUrl("ftp://x.example.com", "domain")).toThrow(
      /scheme should be http or https/,
    );
    expect(normalizeIssuerUrl("localhost:3000", "domain")).toBe("https://localhost:3000");
  });
});
