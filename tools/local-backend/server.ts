/**
 * Local Convex backend for development and tests: the project's real convex/ functions, run by
 * convex-test, behind Convex's public HTTP function API (`npm run local-backend`).
 *
 * It is a stand-in, not Convex: one function at a time, no WebSocket sync. It verifies user JWTs
 * against convex/auth.config.ts (auth.ts), serves file storage (storage.ts) and, with
 * LOCAL_BACKEND_DATA_DIR, keeps its data across restarts (persistence.ts). Production uses Convex
 * cloud or the self-hosted backend. See README.md.
 *
 * Routes and shapes follow the open-source backend (crates/local_backend/src/public_api.rs,
 * storage.rs):
 *   POST /api/query | /api/mutation | /api/action   {"path", "args", "format"?}
 *   POST /api/run/{module path}/{function}          {"args", "format"?}
 *   POST /api/storage/upload?token=...              raw bytes -> {"storageId"}
 *   GET  /api/storage/{uuid}                        the bytes
 *   GET  /version
 *   GET  /.well-known/jwks.json, /.well-known/openid-configuration  (LOCAL_BACKEND_JWKS_FILE)
 * A call answers HTTP 200 with {"status":"success","value",...} or
 * {"status":"error","errorMessage","errorData"?} (errorData only for ConvexError); a request the
 * backend cannot take answers 4xx with {"code","message"}.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { AuthError, loadAuthConfig, TokenVerifier, type UserIdentity } from "./auth.js";
import { LocalBackend, pathProblem, type Call } from "./backend.js";
import { loadModules, type FunctionKind } from "./modules.js";
import { DataDir } from "./persistence.js";
import { isUuid, parseDigestHeader, parseRange, StorageKeys } from "./storage.js";
import { formatSize, parseFormat, writeJson, type JsonTree, type ValueFormat } from "./wire.js";

/**
 * The admin key used when CONVEX_ADMIN_KEY is unset. Not a secret: the server only ever binds
 * 127.0.0.1 and holds throwaway in-memory data. Documented in README.md; worker/local/local_convex.py
 * carries the same constant (DEV_ADMIN_KEY) for `jangar dev` and `make run`.
 */
export const DEV_ADMIN_KEY = "jangar-local-dev-admin-key";

/** Arguments may be 16 MiB (Convex's limit); the envelope and JSON escaping need some room. */
const MAX_BODY_BYTES = 20 * 1024 * 1024;
/** Default bound on one file upload (LOCAL_BACKEND_MAX_UPLOAD_BYTES overrides it). */
const DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024;
/** Stored files are immutable: the backend lets clients cache them for 30 days. */
const FILE_CACHE_CONTROL = "private, max-age=2592000";
const SHUTDOWN_GRACE_MS = 2000;

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, "..", "..");

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function packageVersion(name: string): string {
  try {
    const file = resolve(REPO_ROOT, "node_modules", name, "package.json");
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

function sendJson(res: http.ServerResponse, status: number, tree: JsonTree): void {
  const body = writeJson(tree);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}

function sendError(res: http.ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { code: err.code, message: err.message });
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

type Credentials =
  { kind: "none" } | { kind: "admin"; key: string } | { kind: "user"; token: string };

/**
 * Reads `Authorization` as the backend's `ExtractAuthenticationToken` does: `Convex <admin key>`
 * is an admin key, `Bearer <token>` a user token, anything else 400. Checking the key or the
 * token comes later (`authenticate`), after the body and path, as in the backend.
 */
function parseAuthorization(header: string | undefined): Credentials {
  if (header === undefined) return { kind: "none" };
  if (header.length < 7) {
    throw new HttpError(400, "InvalidHeaderFailure", "Invalid authentication header");
  }
  if (header.slice(0, 7).toLowerCase() === "convex ")
    return { kind: "admin", key: header.slice(7) };
  if (header.length > 7 && header.slice(0, 7).toLowerCase() === "bearer ") {
    return { kind: "user", token: header.slice(7).trim() };
  }
  throw new HttpError(400, "InvalidAdminKey", "Invalid admin key");
}

interface Authenticated {
  admin: boolean;
  identity: UserIdentity | null;
}

/**
 * The backend's `authenticate`: a wrong admin key is 401 BadAdminKey (on any function); a user
 * token is verified against auth.config.ts and refused (401, or 400 for a provider that cannot be
 * discovered) when any check fails, never run as anonymous.
 */
async function authenticate(
  credentials: Credentials,
  adminKey: string,
  verifier: TokenVerifier,
): Promise<Authenticated> {
  switch (credentials.kind) {
    case "none":
      return { admin: false, identity: null };
    case "admin":
      if (!timingSafeEqual(digest(credentials.key), digest(adminKey))) {
        throw new HttpError(
          401,
          "BadAdminKey",
          "The provided admin key was invalid for this instance",
        );
      }
      return { admin: true, identity: null };
    case "user":
      try {
        return { admin: false, identity: await verifier.verify(credentials.token) };
      } catch (e) {
        if (e instanceof AuthError) throw new HttpError(e.status, e.code, e.message);
        throw e;
      }
  }
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const mime = value.split(";")[0].trim().toLowerCase();
  const match = /^application\/([^/]+)$/.exec(mime);
  return match !== null && (match[1] === "json" || match[1].endsWith("+json"));
}

/**
 * Reads the body up to `limit` bytes. Beyond it the rest is drained (not kept) before the 413
 * goes out, so a client that is still sending sees the answer rather than a reset connection.
 */
function readBody(
  req: http.IncomingMessage,
  limit: number,
  tooLarge: () => HttpError,
): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number(req.headers["content-length"] ?? 0) > limit;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
    });
    req.on("end", () => {
      if (over) reject(tooLarge());
      else resolveBody(Buffer.concat(chunks, size));
    });
    req.on("error", reject);
  });
}

const callTooLarge = (): HttpError =>
  new HttpError(
    413,
    "PayloadTooLarge",
    `Request body is larger than the limit of ${formatSize(MAX_BODY_BYTES)} ` +
      `(function arguments may be ${formatSize(16 * 1024 * 1024)})`,
  );

const SHAPE = "Failed to deserialize the JSON body into the target type";

function parseRequest(
  raw: Buffer,
  needsPath: boolean,
): { path?: string; args: unknown; format: ValueFormat } {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw new HttpError(
      400,
      "BadJsonBody",
      `Failed to parse the request body as JSON: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "BadJsonBody", `${SHAPE}: invalid type: expected a JSON object`);
  }
  const fields = body as Record<string, unknown>;
  if (needsPath) {
    if (fields.path === undefined)
      throw new HttpError(400, "BadJsonBody", `${SHAPE}: missing field \`path\``);
    if (typeof fields.path !== "string") {
      throw new HttpError(400, "BadJsonBody", `${SHAPE}: path: invalid type: expected a string`);
    }
  }
  if (fields.args === undefined)
    throw new HttpError(400, "BadJsonBody", `${SHAPE}: missing field \`args\``);
  let format: ValueFormat = "clean"; // The backend's default for current clients.
  if (fields.format !== undefined && fields.format !== null) {
    const parsed = parseFormat(fields.format);
    if (parsed === null) {
      throw new HttpError(
        400,
        "BadFormat",
        `format param must be one of [\`json\`]. Got ${String(fields.format)}`,
      );
    }
    format = parsed;
  }
  return { path: fields.path as string | undefined, args: fields.args, format };
}

/** `/api/run/lib/foo/bar` -> `lib/foo:bar`, as the backend's run-by-URL endpoint does. */
function pathFromRunUrl(rest: string): string {
  const missing = new HttpError(
    400,
    "MissingIdentifier",
    "Path or function name not provided in path, e.g. /api/run/messages/list",
  );
  let parts: string[];
  try {
    parts = rest.split("/").map((p) => decodeURIComponent(p));
  } catch {
    throw missing;
  }
  if (parts.length < 2 || parts.some((p) => p === "")) throw missing;
  const name = parts.pop() as string;
  return `${parts.join("/")}:${name}`;
}

const KIND_ROUTES: Record<string, FunctionKind> = {
  "/api/query": "query",
  "/api/mutation": "mutation",
  "/api/action": "action",
};

interface ServerState {
  backend: LocalBackend | null;
  adminKey: string;
  version: string;
  verifier: TokenVerifier;
  maxUploadBytes: number;
  origin: string;
  jwksFile: string | null;
  storageKeys: StorageKeys;
}

/**
 * Browsers call the API, upload and download cross-origin: like the backend's CORS layer on
 * `/api`, every answer to a request with an `Origin` allows any origin, and preflights succeed.
 */
function allowCors(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.headers.origin === undefined) return;
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Vary", "Origin");
}

function answerPreflight(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(204, {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
    "Access-Control-Allow-Headers": req.headers["access-control-request-headers"] ?? "*",
    "Access-Control-Max-Age": "86400",
  });
  res.end();
}

/** `POST /api/storage/upload?token=...`: the raw body becomes a stored file. */
async function handleUpload(
  state: ServerState,
  backend: LocalBackend,
  url: URL,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const token = url.searchParams.get("token");
  if (token === null) {
    req.resume();
    throw new HttpError(
      400,
      "BadQueryArgs",
      "Failed to deserialize query string: missing field `token`",
    );
  }
  const check = state.storageKeys.checkUploadToken(token);
  if (check !== "ok") {
    req.resume();
    throw check === "expired"
      ? new HttpError(401, "StorageTokenExpired", "Store File Authorization expired")
      : new HttpError(
          401,
          "StorageTokenInvalid",
          "Couldn't decode the StoreFileAuthorization token",
        );
  }
  const digestHeader = req.headers.digest;
  let expected: Buffer | null = null;
  if (typeof digestHeader === "string") {
    expected = parseDigestHeader(digestHeader);
    if (expected === null) {
      req.resume();
      throw new HttpError(400, "BadHeader", "Bad header for digest: invalid HTTP header (digest)");
    }
  }
  const bytes = await readBody(
    req,
    state.maxUploadBytes,
    () =>
      new HttpError(
        413,
        "PayloadTooLarge",
        `File upload is larger than this local backend's limit of ${formatSize(state.maxUploadBytes)} ` +
          "(LOCAL_BACKEND_MAX_UPLOAD_BYTES)",
      ),
  );
  const actual = createHash("sha256").update(bytes).digest();
  if (expected !== null && !expected.equals(actual)) {
    throw new HttpError(
      400,
      "Sha256Mismatch",
      `Sha256 mismatch. Expected: ${expected.toString("base64")} Actual: ${actual.toString("base64")}`,
    );
  }
  const contentType = req.headers["content-type"];
  const storageId = await backend.storeFile(bytes, contentType || undefined);
  const body = JSON.stringify({ storageId });
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** `GET /api/storage/{uuid}`: the file's bytes, with its Content-Type; one Range if asked. */
async function handleDownload(
  backend: LocalBackend,
  key: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  if (!isUuid(key)) {
    throw new HttpError(
      400,
      "InvalidStoragePath",
      `Invalid storage path: "${key}". Please use \`storage.getUrl()\` to generate a valid URL ` +
        "to retrieve files. See https://docs.convex.dev/file-storage/serve-files for more details",
    );
  }
  const file = await backend.readFile(key.toLowerCase());
  if (file === null) throw new HttpError(404, "FileNotFound", `File ${key} not found`);
  const size = file.bytes.length;
  const range = parseRange(
    typeof req.headers.range === "string" ? req.headers.range : undefined,
    size,
  );
  const common: Record<string, string> = {
    ...(file.contentType !== null ? { "Content-Type": file.contentType } : {}),
    "Cache-Control": FILE_CACHE_CONTROL,
    "Accept-Ranges": "bytes",
  };
  if (range === "multiple" || range === "unsatisfiable") {
    res.writeHead(416, { "Content-Range": `bytes */${size}`, "Content-Length": 0 });
    res.end();
    return;
  }
  if (range !== null) {
    const part = file.bytes.subarray(range.start, range.end + 1);
    res.writeHead(206, {
      ...common,
      "Content-Range": `bytes ${range.start}-${range.end}/${size}`,
      "Content-Length": part.length,
    });
    res.end(req.method === "HEAD" ? undefined : part);
    return;
  }
  res.writeHead(200, {
    Digest: `sha-256=${file.sha256}`,
    ...common,
    "Content-Length": size,
  });
  res.end(req.method === "HEAD" ? undefined : file.bytes);
}

/**
 * The development public key set (LOCAL_BACKEND_JWKS_FILE), read on each request so a rotated
 * key is served at once; and an OpenID discovery document pointing at it, as Convex Auth
 * deployments serve both at these paths.
 */
function handleWellKnown(
  state: ServerState,
  path: string,
  head: boolean,
  res: http.ServerResponse,
): void {
  if (state.jwksFile === null) throw new HttpError(404, "NotFound", `No route for GET ${path}`);
  let text: string;
  let keys: Array<{ alg?: unknown }>;
  try {
    text = readFileSync(state.jwksFile, "utf8");
    const parsed = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(parsed.keys)) throw new Error("it has no `keys` array");
    keys = parsed.keys as Array<{ alg?: unknown }>;
  } catch (e) {
    throw new HttpError(
      500,
      "InvalidJwksFile",
      `LOCAL_BACKEND_JWKS_FILE (${state.jwksFile}) is not a JSON Web Key Set: ` +
        (e instanceof Error ? e.message : String(e)),
    );
  }
  if (path === "/.well-known/openid-configuration") {
    const algs = [...new Set(keys.map((k) => k.alg).filter((a) => typeof a === "string"))];
    text = JSON.stringify({
      issuer: state.origin,
      jwks_uri: `${state.origin}/.well-known/jwks.json`,
      authorization_endpoint: `${state.origin}/oauth/authorize`,
      response_types_supported: ["id_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: algs.length > 0 ? algs : ["RS256"],
    });
  }
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-cache",
  });
  res.end(head ? undefined : text);
}

async function handle(
  state: ServerState,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const method = req.method ?? "GET";
  allowCors(req, res);
  const backend = state.backend;
  if (backend === null) {
    req.resume();
    throw new HttpError(503, "BackendStarting", "The local backend is still starting");
  }
  if (url.pathname === "/version" || url.pathname === "/") {
    if (method !== "GET" && method !== "HEAD") {
      throw new HttpError(405, "MethodNotAllowed", `${method} is not allowed on ${url.pathname}`);
    }
    const text =
      url.pathname === "/version"
        ? state.version
        : "This Convex deployment is running. See https://docs.convex.dev/.";
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": Buffer.byteLength(text),
    });
    res.end(method === "HEAD" ? undefined : text);
    return;
  }

  if (
    url.pathname === "/.well-known/jwks.json" ||
    url.pathname === "/.well-known/openid-configuration"
  ) {
    req.resume();
    if (method !== "GET" && method !== "HEAD") {
      throw new HttpError(405, "MethodNotAllowed", `${method} is not allowed on ${url.pathname}`);
    }
    handleWellKnown(state, url.pathname, method === "HEAD", res);
    return;
  }

  if (url.pathname.startsWith("/api/") && method === "OPTIONS") {
    req.resume();
    answerPreflight(req, res);
    return;
  }

  if (url.pathname.startsWith("/api/storage/")) {
    const key = url.pathname.slice("/api/storage/".length);
    if (key === "upload" && method === "POST") {
      await handleUpload(state, backend, url, req, res);
      return;
    }
    req.resume();
    if (key === "" || key.includes("/")) {
      throw new HttpError(404, "NotFound", `No route for ${method} ${url.pathname}`);
    }
    if (method === "GET" || method === "HEAD") {
      // As in the backend's router, `GET /api/storage/upload` is a (bad) file path too.
      await handleDownload(backend, key, req, res);
      return;
    }
    throw new HttpError(405, "MethodNotAllowed", `${method} is not allowed on ${url.pathname}`);
  }

  const kind: FunctionKind | "any" | undefined = url.pathname.startsWith("/api/run/")
    ? "any"
    : KIND_ROUTES[url.pathname];
  if (kind === undefined) {
    req.resume();
    throw new HttpError(404, "NotFound", `No route for ${method} ${url.pathname}`);
  }
  if (method !== "POST") {
    req.resume();
    throw new HttpError(
      405,
      "MethodNotAllowed",
      `${method} is not allowed on ${url.pathname}; use POST`,
    );
  }

  // Same order as the backend's handler: auth header syntax, body, path, then the key or token.
  let credentials: Credentials;
  try {
    credentials = parseAuthorization(req.headers.authorization);
  } catch (e) {
    req.resume();
    throw e;
  }
  if (!isJsonContentType(req.headers["content-type"])) {
    req.resume();
    throw new HttpError(
      400,
      "BadJsonBody",
      "Expected request with `Content-Type: application/json`",
    );
  }
  const raw = await readBody(req, MAX_BODY_BYTES, callTooLarge);
  const parsed = parseRequest(raw, kind !== "any");

  const path =
    kind === "any"
      ? pathFromRunUrl(url.pathname.slice("/api/run/".length))
      : (parsed.path as string);
  const problem = pathProblem(path);
  if (problem !== null) {
    throw new HttpError(
      400,
      "BadConvexFunctionIdentifier",
      `${path} is not a valid path to a Convex function. ${problem}`,
    );
  }
  const { admin, identity } = await authenticate(credentials, state.adminKey, state.verifier);
  const call: Call = { path, kind, args: parsed.args, admin, identity, format: parsed.format };
  sendJson(res, 200, await backend.run(call));
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === "") return 3210;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(
      `PORT must be an integer from 0 to 65535 (0 picks a free port), got ${JSON.stringify(value)}`,
    );
  }
  return port;
}

function parseUploadLimit(value: string | undefined): number {
  if (value === undefined || value === "") return DEFAULT_MAX_UPLOAD_BYTES;
  const bytes = Number(value);
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new Error(
      `LOCAL_BACKEND_MAX_UPLOAD_BYTES must be a whole number of bytes, got ${JSON.stringify(value)}`,
    );
  }
  return bytes;
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolveListen((server.address() as AddressInfo).port);
    });
  });
}

async function main(): Promise<void> {
  const port = parsePort(process.env.PORT);
  const maxUploadBytes = parseUploadLimit(process.env.LOCAL_BACKEND_MAX_UPLOAD_BYTES);
  const adminKey = process.env.CONVEX_ADMIN_KEY || DEV_ADMIN_KEY;
  const functionsDir = resolve(
    process.env.LOCAL_BACKEND_FUNCTIONS_DIR || resolve(REPO_ROOT, "convex"),
  );
  const dataDirPath = process.env.LOCAL_BACKEND_DATA_DIR
    ? resolve(process.env.LOCAL_BACKEND_DATA_DIR)
    : null;
  const jwksFile = process.env.LOCAL_BACKEND_JWKS_FILE
    ? resolve(process.env.LOCAL_BACKEND_JWKS_FILE)
    : null;
  const version = `local-backend (convex ${packageVersion("convex")}, convex-test ${packageVersion("convex-test")})`;

  const state: ServerState = {
    backend: null,
    adminKey,
    version,
    verifier: new TokenVerifier([]),
    maxUploadBytes,
    origin: "",
    jwksFile,
    storageKeys: new StorageKeys(randomBytes(32)),
  };
  const server = http.createServer((req, res) => {
    handle(state, req, res).catch((err: unknown) => {
      const httpError =
        err instanceof HttpError
          ? err
          : new HttpError(
              500,
              "InternalServerError",
              err instanceof Error ? err.message : String(err),
            );
      if (!(err instanceof HttpError)) process.stderr.write(`local backend: ${String(err)}\n`);
      if (res.headersSent) res.destroy();
      else sendError(res, httpError);
    });
  });

  // Bind first, so the origin (and so CONVEX_CLOUD_URL, storage URLs and a JWKS URL on this
  // server) is known before the functions and auth.config.ts load; answer 503 until ready.
  const bound = await listen(server, port);
  server.on("error", (err) => {
    process.stderr.write(`local backend: ${err.message}\n`);
    process.exit(1);
  });
  state.origin = `http://127.0.0.1:${bound}`;
  // Convex sets these in every deployment; functions and auth.config.ts may read them.
  process.env.CONVEX_CLOUD_URL = state.origin;
  process.env.CONVEX_SITE_URL = state.origin;

  const dataDir = dataDirPath === null ? null : new DataDir(dataDirPath);
  if (dataDir !== null) state.storageKeys = new StorageKeys(dataDir.secret);
  const loaded = await loadModules(functionsDir);
  const auth = await loadAuthConfig(functionsDir);
  state.verifier = new TokenVerifier(auth?.providers ?? []);
  const backend = new LocalBackend(loaded, functionsDir, REPO_ROOT, {
    origin: state.origin,
    storageKeys: state.storageKeys,
  });
  let restored = "in memory";
  if (dataDir !== null) {
    const stats = await backend.persistTo(dataDir);
    restored =
      `data in ${dataDir.dir}: ${stats.documents} documents and ${stats.files} stored files restored ` +
      `(${stats.journalEntries} journal entries) in ${stats.ms.toFixed(0)} ms`;
    if (stats.droppedTail !== null) restored += `; dropped ${stats.droppedTail}`;
    if (stats.removedFiles > 0) restored += `; removed ${stats.removedFiles} unreferenced files`;
  }
  state.backend = backend;

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const exit = (): never => {
      dataDir?.close();
      process.exit(0);
    };
    server.close(() => exit());
    server.closeIdleConnections();
    // Let the call in flight answer, then drop whatever connections are left.
    const force = setTimeout(() => {
      server.closeAllConnections();
      exit();
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    void backend.idle().then(() => {
      server.closeAllConnections();
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("unhandledRejection", (reason) => {
    process.stderr.write(`local backend: unhandled rejection: ${String(reason)}\n`);
  });

  process.stdout.write(`convex local backend listening on ${state.origin}\n`);
  const providers = auth === null ? "no auth.config" : `${auth.providers.length} auth providers`;
  process.stderr.write(
    `local backend: ${backend.functionCount} functions from ${functionsDir}; ${providers}; ` +
      `admin key ${process.env.CONVEX_ADMIN_KEY ? "from CONVEX_ADMIN_KEY" : "is the development key"}; ` +
      `${restored}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(
    `local backend failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
