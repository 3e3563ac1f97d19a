/**
 * Runs the project's real Convex functions in convex-test, one call at a time, and turns each
 * outcome into the backend's UDF response (`{"status":"success"|"error", ...}`).
 *
 * A call runs as the identity the server verified (convex-test's `withIdentity`), or anonymously.
 * The storage syscalls are bent to this server: `generateUploadUrl` and `getUrl` answer URLs on
 * its own origin (see storage.ts), `getMetadata` (which convex-test lacks) answers as the backend
 * does, and with a data directory the bytes of every stored file are kept on disk before the
 * `_storage` document naming them can commit (see persistence.ts).
 *
 * What the real backend checks before running a function, this checks in the same order and
 * with the same messages (the backend's UDF path validation): an unknown function and an internal one
 * called without an admin key both answer "Could not find public function for ...", so the
 * answer does not reveal which internal functions exist; a function of another kind answers
 * "Trying to execute X as Query, but it is defined as Mutation."; arguments over 16 MiB are
 * refused. convex-test does not enforce Convex's 1 MiB document limit, so inserts and updates
 * are checked here (a patch is measured by its own size, a lower bound of the merged document).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { inspect } from "node:util";
import { convexTest } from "convex-test";
import { makeFunctionReference, type GenericSchema, type SchemaDefinition } from "convex/server";
import { getConvexSize, jsonToConvex, type JSONValue, type Value } from "convex/values";
import type { UserIdentity } from "./auth.js";
import type { FunctionKind, LoadedModules, RegisteredFunction } from "./modules.js";
import { attachPersistence, reachInternals, type DataDir, type OpenStats } from "./persistence.js";
import type { StorageKeys } from "./storage.js";
import { exportValue, formatSize, type JsonTree, type ValueFormat } from "./wire.js";

export const MAX_ARGS_BYTES = 16 * 1024 * 1024;
export const MAX_DOCUMENT_BYTES = 1024 * 1024;
const MAX_LOG_LINES = 256;

export type UdfResponse =
  | { status: "success"; value: JsonTree; logLines?: string[] }
  | { status: "error"; errorMessage: string; errorData?: JsonTree; logLines?: string[] };

export interface Call {
  /** The caller's path, e.g. `runs:start`, `runs.js:start` or `runs` (default export). */
  path: string;
  /** The endpoint's kind; `any` for /api/run. */
  kind: FunctionKind | "any";
  /** Decoded-by-`JSON.parse` arguments: an object, or the legacy one-element array. */
  args: unknown;
  admin: boolean;
  /** The verified user identity, or null (anonymous, or an admin key). */
  identity?: UserIdentity | null;
  format: ValueFormat;
}

/** A stored file as the download route serves it. */
export interface StoredFile {
  storageId: string;
  bytes: Buffer;
  /** Base64 SHA-256, as in the `_storage` document. */
  sha256: string;
  contentType: string | null;
}

const KIND_NAMES: Record<FunctionKind, string> = {
  query: "Query",
  mutation: "Mutation",
  action: "Action",
};

/** `runs.js:start` -> `runs:start`; `runs` -> `runs:default`. */
export function canonicalPath(path: string): string {
  const [module, name] = path.includes(":") ? path.split(":", 2) : [path, "default"];
  return `${module.replace(/\.js$/, "")}:${name}`;
}

/** The backend's syntax check on a function path (`module/path:export`). */
export function pathProblem(path: string): string | null {
  if (path.length === 0) return "The path is empty.";
  if ((path.match(/:/g) ?? []).length > 1) return "A path has at most one `:`.";
  const [module, name] = path.includes(":") ? path.split(":", 2) : [path, "default"];
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(module) || module.split("/").includes("..")) {
    return `Invalid module path ${JSON.stringify(module)}.`;
  }
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name))
    return `Invalid function name ${JSON.stringify(name)}.`;
  return null;
}

function notFound(path: string): string {
  const shown = path.replace(/\.js(?=:|$)/, "");
  return (
    `Could not find public function for '${shown}'. ` +
    "Did you forget to run `npx convex dev` or `npx convex deploy`?"
  );
}

function isConvexError(e: unknown): e is Error & { data: Value } {
  return typeof e === "object" && e !== null && Symbol.for("ConvexError") in e;
}

type AsyncSyscall = (op: string, jsonArgs: string) => Promise<string>;
type JsSyscall = (op: string, args: Record<string, unknown>) => Promise<unknown>;
interface ConvexGlobal {
  readonly syscall: unknown;
  readonly asyncSyscall: AsyncSyscall;
  readonly jsSyscall: JsSyscall;
}

/**
 * A patch's value without the fields it removes: `db.patch(id, {field: undefined})` sends the
 * field as `{"$undefined": null}`, which is an instruction, not a value to measure.
 */
function withoutRemovedFields(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value).filter(
      ([, field]) => !(typeof field === "object" && field !== null && "$undefined" in field),
    ),
  );
}

/** The backend whose call is running (scheduled functions inherit it through their timers). */
const currentBackend = new AsyncLocalStorage<LocalBackend>();
const HOOKED = Symbol.for("jangar.localBackend.syscallHooks");

/**
 * Wraps the `Convex` global that convex-test installs (the Convex runtime sends every syscall
 * through it), once per process: writes over 1 MiB fail as on the real backend, and the storage
 * syscalls of a call made by a LocalBackend go to that backend (its URLs, its data directory).
 */
function installSyscallHooks(): void {
  const holder = globalThis as unknown as { Convex?: ConvexGlobal & { [HOOKED]?: true } };
  const inner = holder.Convex;
  if (inner === undefined) throw new Error("convex-test did not install the Convex global");
  if (inner[HOOKED]) return;
  const asyncSyscall: AsyncSyscall = async (op, jsonArgs) => {
    if (op === "1.0/insert" || op === "1.0/shallowMerge" || op === "1.0/replace") {
      const { value } = JSON.parse(jsonArgs) as { value: unknown };
      const size = getConvexSize(jsonToConvex(withoutRemovedFields(value) as never));
      if (size > MAX_DOCUMENT_BYTES) {
        throw new Error(
          `Value is too large (${formatSize(size)} > maximum size ${formatSize(MAX_DOCUMENT_BYTES)})`,
        );
      }
    }
    const backend = currentBackend.getStore();
    if (backend !== undefined) {
      const answer = await backend.storageSyscall(op, jsonArgs, inner.asyncSyscall);
      if (answer !== undefined) return answer;
    }
    return inner.asyncSyscall(op, jsonArgs);
  };
  const jsSyscall: JsSyscall = async (op, args) => {
    const backend = currentBackend.getStore();
    if (backend !== undefined && op === "storage/storeBlob" && args.blob instanceof Blob) {
      backend.keepBytes(Buffer.from(await args.blob.arrayBuffer()));
    }
    return inner.jsSyscall(op, args);
  };
  holder.Convex = {
    [HOOKED]: true,
    get syscall() {
      return inner.syscall;
    },
    get asyncSyscall() {
      return asyncSyscall;
    },
    get jsSyscall() {
      return jsSyscall;
    },
  };
}

type ConsoleMethod = "log" | "info" | "warn" | "error" | "debug";
const LEVELS: Record<ConsoleMethod, string> = {
  log: "LOG",
  info: "INFO",
  warn: "WARN",
  error: "ERROR",
  debug: "DEBUG",
};

/**
 * Runs `job` with console output captured into `lines` as Convex log lines (`[LOG] 'text'`),
 * which the backend returns to development clients in `logLines`. Calls are serialized, so
 * replacing the console for the duration is safe. Lines are echoed to stderr for whoever runs
 * the server (stdout carries only the start line).
 */
async function withCapturedLogs<T>(
  path: string,
  lines: string[],
  job: () => Promise<T>,
): Promise<T> {
  const saved = new Map<ConsoleMethod, (...args: unknown[]) => void>();
  for (const method of Object.keys(LEVELS) as ConsoleMethod[]) {
    saved.set(method, console[method]);
    console[method] = (...args: unknown[]) => {
      const text = args.map((a) => inspect(a, { depth: 4, breakLength: Infinity })).join(" ");
      const line = `[${LEVELS[method]}] ${text}`;
      if (lines.length < MAX_LOG_LINES) lines.push(line);
      process.stderr.write(`[${path}] ${line}\n`);
    };
  }
  try {
    return await job();
  } finally {
    for (const [method, original] of saved) console[method] = original;
  }
}

/** `Uncaught Error: message` plus the stack frames inside convex/, as the backend reports. */
function describeThrown(e: unknown, functionsDir: string, repoRoot: string): string {
  if (!(e instanceof Error)) return `Uncaught ${inspect(e)}`;
  const frames = (e.stack ?? "")
    .split("\n")
    .filter((line) => line.trimStart().startsWith("at ") && line.includes(functionsDir))
    .slice(0, 5)
    .map(
      (line) =>
        `    ${line
          .trim()
          .replace(/file:\/\//g, "")
          .split(`${repoRoot}/`)
          .join("")}`,
    );
  return [`Uncaught ${e.name}: ${e.message}`, ...frames].join("\n");
}

export interface BackendOptions {
  /** This server's origin, e.g. `http://127.0.0.1:3210`: storage URLs point at it. */
  origin: string;
  /** Signs upload tokens and derives file URLs. */
  storageKeys: StorageKeys;
}

export class LocalBackend {
  private readonly t: ReturnType<typeof convexTest>;
  private readonly functions: Map<string, RegisteredFunction>;
  private tail: Promise<unknown> = Promise.resolve();
  private dataDir: DataDir | null = null;
  /** File URL UUID -> `_storage` id, for the URLs handed out (rebuilt on a miss). */
  private readonly fileIds = new Map<string, string>();
  /** Every `_storage` document created up to this time has its URL UUID in `fileIds`. */
  private filesMappedThrough = -1;

  /**
   * @param functionsDir absolute path of convex/ (stack frames inside it are reported)
   * @param repoRoot absolute path that reported frames are made relative to
   */
  constructor(
    loaded: LoadedModules,
    private readonly functionsDir: string,
    private readonly repoRoot: string,
    private readonly options: BackendOptions,
  ) {
    this.functions = loaded.functions;
    // transactionLimits: enforce Convex's per-transaction read/write limits, as production does.
    this.t = convexTest({
      schema: loaded.schema as SchemaDefinition<GenericSchema, boolean> | undefined,
      modules: loaded.modules,
      transactionLimits: true,
    });
    installSyscallHooks();
  }

  /**
   * Restores the data directory's documents and files and journals every commit from now on
   * (see persistence.ts). Call once, before the first call.
   */
  async persistTo(dataDir: DataDir): Promise<OpenStats> {
    const internals = await reachInternals(this.t);
    const stats = await attachPersistence(internals, dataDir);
    this.dataDir = dataDir;
    return stats;
  }

  get functionCount(): number {
    return this.functions.size;
  }

  /** Settles when every call queued so far has finished (used on shutdown). */
  idle(): Promise<unknown> {
    return this.tail;
  }

  /** Runs jobs strictly one after another: convex-test is not safe for concurrent calls. */
  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => currentBackend.run(this, job));
    this.tail = result.catch(() => undefined);
    return result;
  }

  run(call: Call): Promise<UdfResponse> {
    return this.enqueue(() => this.execute(call));
  }

  // --- Storage ---

  /** `<origin>/api/storage/upload?token=...`, what `generateUploadUrl()` returns. */
  uploadUrl(): string {
    return `${this.options.origin}/api/storage/upload?token=${this.options.storageKeys.issueUploadToken()}`;
  }

  /** `<origin>/api/storage/<uuid>`, what `getUrl(id)` returns for a stored file. */
  fileUrl(storageId: string): string {
    const uuid = this.options.storageKeys.fileUuid(storageId);
    this.fileIds.set(uuid, storageId);
    return `${this.options.origin}/api/storage/${uuid}`;
  }

  /** With a data directory, keeps a file's bytes on disk before its `_storage` document commits. */
  keepBytes(bytes: Buffer): void {
    this.dataDir?.keepBytes(bytes);
  }

  /**
   * Answers the storage syscalls convex-test gets wrong or lacks; undefined for the others.
   * `inner` is convex-test's own syscall entry point.
   */
  async storageSyscall(
    op: string,
    jsonArgs: string,
    inner: AsyncSyscall,
  ): Promise<string | undefined> {
    switch (op) {
      case "1.0/storageGenerateUploadUrl":
        return JSON.stringify(this.uploadUrl());
      case "1.0/storageGetUrl": {
        const answer = JSON.parse(await inner(op, jsonArgs)) as string | null;
        if (answer === null) return "null";
        const { storageId } = JSON.parse(jsonArgs) as { storageId: string };
        return JSON.stringify(this.fileUrl(storageId));
      }
      case "1.0/storageGetMetadata": {
        // As the backend's `storage_get_metadata`: the hex SHA-256, null for a missing file.
        const { storageId } = JSON.parse(jsonArgs) as { storageId: string };
        const doc = JSON.parse(
          await inner("1.0/get", JSON.stringify({ table: "_storage", id: storageId })),
        ) as { sha256: string; size: number; contentType?: string } | null;
        if (doc === null) return "null";
        return JSON.stringify({
          storageId,
          sha256: Buffer.from(doc.sha256, "base64").toString("hex"),
          size: doc.size,
          contentType: doc.contentType ?? null,
        });
      }
      case "1.0/storageStore": {
        const { blob } = JSON.parse(jsonArgs) as { blob: string };
        this.keepBytes(Buffer.from(blob, "base64"));
        return undefined;
      }
      default:
        return undefined;
    }
  }

  /** Stores an uploaded file, as `ctx.storage.store` would; returns its `_storage` id. */
  storeFile(bytes: Buffer, contentType: string | undefined): Promise<string> {
    return this.enqueue(async () => {
      const blob = new Blob([bytes], contentType === undefined ? {} : { type: contentType });
      const id = (await this.t.run(async (ctx) => ctx.storage.store(blob))) as string;
      this.fileUrl(id);
      return id;
    });
  }

  /** The file a URL's UUID names, or null when there is none (never stored, or deleted). */
  readFile(uuid: string): Promise<StoredFile | null> {
    return this.enqueue(async () => {
      let storageId = this.fileIds.get(uuid);
      if (storageId === undefined) {
        // A URL handed out before a restart, or by a query whose answer was not seen here:
        // map the files stored since the last look (only those, so a URL that names nothing
        // costs an indexed read, not a scan of every file).
        const since = this.filesMappedThrough;
        const docs = await this.t.run(async (ctx) =>
          (
            await ctx.db.system
              .query("_storage")
              .withIndex("by_creation_time", (q) => q.gt("_creationTime", since))
              .collect()
          ).map((doc) => ({ id: doc._id as string, at: doc._creationTime })),
        );
        for (const doc of docs) {
          this.fileUrl(doc.id);
          this.filesMappedThrough = Math.max(this.filesMappedThrough, doc.at);
        }
        storageId = this.fileIds.get(uuid);
        if (storageId === undefined) return null;
      }
      const id = storageId;
      let found: StoredFile | null = null;
      await this.t.run(async (ctx) => {
        const doc = await ctx.db.system.get(id as never);
        const blob = doc === null ? null : await ctx.storage.get(id as never);
        if (doc !== null && blob !== null) {
          const meta = doc as unknown as { sha256: string; contentType?: string };
          found = {
            storageId: id,
            bytes: Buffer.from(await blob.arrayBuffer()),
            sha256: meta.sha256,
            contentType: meta.contentType ?? null,
          };
        }
        return null;
      });
      return found;
    });
  }

  private async execute(call: Call): Promise<UdfResponse> {
    const canonical = canonicalPath(call.path);
    const fn = this.functions.get(canonical);
    if (fn === undefined || (fn.visibility === "internal" && !call.admin)) {
      return { status: "error", errorMessage: notFound(call.path) };
    }
    if (call.kind !== "any" && call.kind !== fn.kind) {
      return {
        status: "error",
        errorMessage:
          `Trying to execute ${canonical.replace(/:default$/, "")} as ${KIND_NAMES[call.kind]}, ` +
          `but it is defined as ${KIND_NAMES[fn.kind]}.`,
      };
    }

    let args: Value;
    try {
      const raw = Array.isArray(call.args) && call.args.length === 1 ? call.args[0] : call.args;
      args = jsonToConvex(raw as never);
    } catch (e) {
      return {
        status: "error",
        errorMessage: `Invalid arguments for ${canonical}: ${e instanceof Error ? e.message : String(e)}`,
      };
    }
    if (
      args === null ||
      typeof args !== "object" ||
      Array.isArray(args) ||
      args instanceof ArrayBuffer
    ) {
      return {
        status: "error",
        errorMessage: `The arguments to a Convex function must be an object. Received: ${inspect(args)}`,
      };
    }
    const size = getConvexSize(args);
    if (size > MAX_ARGS_BYTES) {
      return {
        status: "error",
        errorMessage:
          `Arguments for ${canonical} are too large ` +
          `(actual: ${formatSize(size)}, limit: ${formatSize(MAX_ARGS_BYTES)})`,
      };
    }

    const argObject = args as Record<string, Value>;
    // The identity the server verified; convex-test's `withIdentity` keeps every attribute given.
    // (Its attributes are JSON values from the token, which is what `Partial<UserIdentity>` holds.)
    const t = call.identity
      ? this.t.withIdentity(call.identity as Record<string, JSONValue>)
      : this.t;
    const invoke = (): Promise<unknown> => {
      switch (fn.kind) {
        case "query":
          return t.query(makeFunctionReference<"query">(canonical), argObject);
        case "mutation":
          return t.mutation(makeFunctionReference<"mutation">(canonical), argObject);
        case "action":
          return t.action(makeFunctionReference<"action">(canonical), argObject);
      }
    };
    const lines: string[] = [];
    try {
      const value = await withCapturedLogs(canonical, lines, invoke);
      const response: UdfResponse = {
        status: "success",
        value: exportValue(value as Value, call.format),
      };
      if (lines.length > 0) response.logLines = lines;
      return response;
    } catch (e) {
      const response: UdfResponse = {
        status: "error",
        errorMessage: describeThrown(e, this.functionsDir, this.repoRoot),
      };
      if (isConvexError(e)) {
        try {
          response.errorData = exportValue(e.data, call.format);
        } catch {
          // ConvexError data that is not a Convex value: the message still says what happened.
        }
      }
      if (lines.length > 0) response.logLines = lines;
      return response;
    }
  }
}
