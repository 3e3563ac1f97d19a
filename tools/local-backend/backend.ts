/**
 * Runs the project's real Convex functions in convex-test, one call at a time, and turns each
 * outcome into the backend's UDF response (`{"status":"success"|"error", ...}`).
 *
 * What the real backend checks before running a function, this checks in the same order and
 * with the same messages (the backend's UDF path validation): an unknown function and an internal one
 * called without an admin key both answer "Could not find public function for ...", so the
 * answer does not reveal which internal functions exist; a function of another kind answers
 * "Trying to execute X as Query, but it is defined as Mutation."; arguments over 16 MiB are
 * refused. convex-test does not enforce Convex's 1 MiB document limit, so inserts and updates
 * are checked here (a patch is measured by its own size, a lower bound of the merged document).
 */
import { inspect } from "node:util";
import { convexTest } from "convex-test";
import { makeFunctionReference, type GenericSchema, type SchemaDefinition } from "convex/server";
import { getConvexSize, jsonToConvex, type Value } from "convex/values";
import type { FunctionKind, LoadedModules, RegisteredFunction } from "./modules.js";
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
  format: ValueFormat;
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
interface ConvexGlobal {
  readonly syscall: unknown;
  readonly asyncSyscall: AsyncSyscall;
  readonly jsSyscall: unknown;
}

/**
 * Wraps the `Convex` global that convex-test installs (the Convex runtime sends every database
 * write through `Convex.asyncSyscall`) so that writes over 1 MiB fail as on the real backend.
 */
function enforceDocumentLimit(): void {
  const holder = globalThis as unknown as { Convex?: ConvexGlobal };
  const inner = holder.Convex;
  if (inner === undefined) throw new Error("convex-test did not install the Convex global");
  const checked: AsyncSyscall = async (op, jsonArgs) => {
    if (op === "1.0/insert" || op === "1.0/shallowMerge" || op === "1.0/replace") {
      const { value } = JSON.parse(jsonArgs) as { value: unknown };
      const size = getConvexSize(jsonToConvex(value as never));
      if (size > MAX_DOCUMENT_BYTES) {
        throw new Error(
          `Value is too large (${formatSize(size)} > maximum size ${formatSize(MAX_DOCUMENT_BYTES)})`,
        );
      }
    }
    return inner.asyncSyscall(op, jsonArgs);
  };
  holder.Convex = {
    get syscall() {
      return inner.syscall;
    },
    get asyncSyscall() {
      return checked;
    },
    get jsSyscall() {
      return inner.jsSyscall;
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

export class LocalBackend {
  private readonly t: ReturnType<typeof convexTest>;
  private readonly functions: Map<string, RegisteredFunction>;
  private tail: Promise<unknown> = Promise.resolve();

  /**
   * @param functionsDir absolute path of convex/ (stack frames inside it are reported)
   * @param repoRoot absolute path that reported frames are made relative to
   */
  constructor(
    loaded: LoadedModules,
    private readonly functionsDir: string,
    private readonly repoRoot: string,
  ) {
    this.functions = loaded.functions;
    // transactionLimits: enforce Convex's per-transaction read/write limits, as production does.
    this.t = convexTest({
      schema: loaded.schema as SchemaDefinition<GenericSchema, boolean> | undefined,
      modules: loaded.modules,
      transactionLimits: true,
    });
    enforceDocumentLimit();
  }

  get functionCount(): number {
    return this.functions.size;
  }

  /** Settles when every call queued so far has finished (used on shutdown). */
  idle(): Promise<unknown> {
    return this.tail;
  }

  /** Runs calls strictly one after another: convex-test is not safe for concurrent calls. */
  run(call: Call): Promise<UdfResponse> {
    const result = this.tail.then(() => this.execute(call));
    this.tail = result.catch(() => undefined);
    return result;
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
    const invoke = (): Promise<unknown> => {
      switch (fn.kind) {
        case "query":
          return this.t.query(makeFunctionReference<"query">(canonical), argObject);
        case "mutation":
          return this.t.mutation(makeFunctionReference<"mutation">(canonical), argObject);
        case "action":
          return this.t.action(makeFunctionReference<"action">(canonical), argObject);
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
