/**
 * Local Convex backend for development and tests: the project's real convex/ functions, run in
 * memory by convex-test, behind Convex's public HTTP function API (`npm run local-backend`).
 *
 * It is a stand-in, not Convex: one function at a time, in memory, no WebSocket sync, no auth
 * token verification. Production uses Convex cloud or the self-hosted backend. See README.md.
 *
 * Routes and shapes follow the open-source backend (crates/local_backend/src/public_api.rs):
 *   POST /api/query | /api/mutation | /api/action   {"path", "args", "format"?}
 *   POST /api/run/{module path}/{function}          {"args", "format"?}
 *   GET  /version
 * A call answers HTTP 200 with {"status":"success","value",...} or
 * {"status":"error","errorMessage","errorData"?} (errorData only for ConvexError); a request the
 * backend cannot take answers 4xx with {"code","message"}.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LocalBackend, pathProblem, type Call } from "./backend.js";
import { loadModules, type FunctionKind } from "./modules.js";
import { formatSize, parseFormat, writeJson, type JsonTree, type ValueFormat } from "./wire.js";

/**
 * The admin key used when CONVEX_ADMIN_KEY is unset. Not a secret: the server only ever binds
 * 127.0.0.1 and holds throwaway in-memory data. Documented in README.md; worker/local/local_convex.py
 * carries the same constant (DEV_ADMIN_KEY) for `jangar dev` and `make run`.
 */
export const DEV_ADMIN_KEY = "jangar-local-dev-admin-key";

/** Arguments may be 16 MiB (Convex's limit); the envelope and JSON escaping need some room. */
const MAX_BODY_BYTES = 20 * 1024 * 1024;
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

/**
 * Reads `Authorization` as the backend does: `Convex <admin key>` is an admin key (checked
 * against ours: a wrong key is 401 BadAdminKey); `Bearer <token>` is a user token, accepted but
 * not verified (this stand-in has no auth providers); anything else is 400.
 */
function isAdmin(header: string | undefined, adminKey: string): boolean {
  if (header === undefined) return false;
  if (header.length < 7) {
    throw new HttpError(400, "InvalidHeaderFailure", "Invalid authentication header");
  }
  if (header.slice(0, 7).toLowerCase() === "convex ") {
    const offered = header.slice(7);
    if (!timingSafeEqual(digest(offered), digest(adminKey))) {
      throw new HttpError(
        401,
        "BadAdminKey",
        "The provided admin key was invalid for this instance",
      );
    }
    return true;
  }
  if (/^bearer \S+/i.test(header)) return false;
  throw new HttpError(400, "InvalidAdminKey", "Invalid admin key");
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const mime = value.split(";")[0].trim().toLowerCase();
  const match = /^application\/([^/]+)$/.exec(mime);
  return match !== null && (match[1] === "json" || match[1].endsWith("+json"));
}

/**
 * Reads the body up to MAX_BODY_BYTES. Beyond it the rest is drained (not kept) before the 413
 * goes out, so a client that is still sending sees the answer rather than a reset connection.
 */
function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) {
        reject(
          new HttpError(
            413,
            "PayloadTooLarge",
            `Request body is larger than the limit of ${formatSize(MAX_BODY_BYTES)} ` +
              `(function arguments may be ${formatSize(16 * 1024 * 1024)})`,
          ),
        );
      } else {
        resolveBody(Buffer.concat(chunks));
      }
    });
    req.on("error", reject);
  });
}

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

async function handle(
  backend: LocalBackend,
  adminKey: string,
  version: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const method = req.method ?? "GET";
  if (url.pathname === "/version" || url.pathname === "/") {
    if (method !== "GET" && method !== "HEAD") {
      throw new HttpError(405, "MethodNotAllowed", `${method} is not allowed on ${url.pathname}`);
    }
    const text =
      url.pathname === "/version"
        ? version
        : "This Convex deployment is running. See https://docs.convex.dev/.";
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": Buffer.byteLength(text),
    });
    res.end(method === "HEAD" ? undefined : text);
    return;
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

  // Same order as the backend's extractors: auth header syntax, body, then the key itself.
  const header = req.headers.authorization;
  let headerError: HttpError | null = null;
  let admin = false;
  try {
    admin = isAdmin(header, adminKey);
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    headerError = e;
  }
  if (headerError !== null && headerError.status === 400) {
    req.resume();
    throw headerError;
  }
  if (!isJsonContentType(req.headers["content-type"])) {
    req.resume();
    throw new HttpError(
      400,
      "BadJsonBody",
      "Expected request with `Content-Type: application/json`",
    );
  }
  const raw = await readBody(req);
  const parsed = parseRequest(raw, kind !== "any");
  if (headerError !== null) throw headerError;

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
  const call: Call = { path, kind, args: parsed.args, admin, format: parsed.format };
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

async function main(): Promise<void> {
  const port = parsePort(process.env.PORT);
  const adminKey = process.env.CONVEX_ADMIN_KEY || DEV_ADMIN_KEY;
  const functionsDir = resolve(
    process.env.LOCAL_BACKEND_FUNCTIONS_DIR || resolve(REPO_ROOT, "convex"),
  );
  const loaded = await loadModules(functionsDir);
  const backend = new LocalBackend(loaded, functionsDir, REPO_ROOT);
  const version = `local-backend (convex ${packageVersion("convex")}, convex-test ${packageVersion("convex-test")})`;

  const server = http.createServer((req, res) => {
    handle(backend, adminKey, version, req, res).catch((err: unknown) => {
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
  server.on("error", (err) => {
    process.stderr.write(`local backend: ${err.message}\n`);
    process.exit(1);
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Let the call in flight answer, then drop whatever connections are left.
    const force = setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
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

  server.listen(port, "127.0.0.1", () => {
    const bound = (server.address() as AddressInfo).port;
    process.stdout.write(`convex local backend listening on http://127.0.0.1:${bound}\n`);
    process.stderr.write(
      `local backend: ${backend.functionCount} functions from ${functionsDir}; ` +
        `admin key ${process.env.CONVEX_ADMIN_KEY ? "from CONVEX_ADMIN_KEY" : "is the development key"}\n`,
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `local backend failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
