/**
 * Finds the project's Convex modules and builds the function registry the local backend serves.
 *
 * convex-test normally discovers modules with Vite's `import.meta.glob`, which plain Node does
 * not have, so we hand it an explicit map: the files Convex itself would deploy from convex/,
 * plus the JavaScript in convex/_generated/, keyed by absolute path, each a lazy dynamic import.
 * convex-test locates the functions root from the key that contains `_generated`, so that
 * directory must exist (run `npm run codegen`).
 *
 * The registry is built once at start by importing every module: a module that fails to load
 * stops the server with its error (as a failed `npx convex deploy` would) instead of surfacing
 * later as a confusing "function not found".
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export type FunctionKind = "query" | "mutation" | "action";
export type Visibility = "public" | "internal";

export interface RegisteredFunction {
  /** Canonical path, `module:export` (no extension, `/`-separated; `module:default` too). */
  path: string;
  kind: FunctionKind;
  visibility: Visibility;
}

export interface LoadedModules {
  /** The map convex-test takes: absolute file path -> lazy import. */
  modules: Record<string, () => Promise<unknown>>;
  /** The default export of convex/schema.ts, when present. */
  schema: unknown;
  /** Every exported Convex query, mutation and action, by canonical path. */
  functions: Map<string, RegisteredFunction>;
}

/** The extensions Convex bundles as entry points (convex/src/bundler entryPoints). */
const ENTRY_EXTENSIONS = [".js", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".jsx"];

/**
 * Whether Convex would deploy `relPath` (relative to convex/): the bundler skips dotfiles,
 * editor temp files, paths with spaces and any file whose name has more than one dot (so
 * `lib.test.ts` and `test.setup.ts`, vitest files, are never loaded here either).
 */
function isEntryPoint(relPath: string): boolean {
  const base = relPath.split("/").pop() as string;
  if (!ENTRY_EXTENSIONS.some((ext) => base.endsWith(ext))) return false;
  if (base.startsWith(".") || base.startsWith("#") || relPath.includes(" ")) return false;
  return (base.match(/\./g) ?? []).length <= 1;
}

/** Files under `dir`, as `/`-separated paths relative to it (no node_modules, no dot dirs). */
function listFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    if (name.startsWith(".") || name === "node_modules") continue;
    const rel = prefix === "" ? name : `${prefix}/${name}`;
    if (statSync(join(dir, rel)).isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** `runs.ts` -> `runs`, `lib/transitions.ts` -> `lib/transitions`. */
function modulePathOf(relPath: string): string {
  return relPath.replace(/\.[^./]+$/, "");
}

interface ConvexFunctionShape {
  isQuery?: boolean;
  isMutation?: boolean;
  isAction?: boolean;
  isPublic?: boolean;
  isInternal?: boolean;
}

function describe(exported: unknown): { kind: FunctionKind; visibility: Visibility } | null {
  if (exported === null || (typeof exported !== "function" && typeof exported !== "object")) {
    return null;
  }
  const f = exported as ConvexFunctionShape;
  const kind: FunctionKind | null =
    f.isQuery === true
      ? "query"
      : f.isMutation === true
        ? "mutation"
        : f.isAction === true
          ? "action"
          : null;
  if (kind === null) return null;
  if (f.isPublic === true) return { kind, visibility: "public" };
  if (f.isInternal === true) return { kind, visibility: "internal" };
  return null;
}

export async function loadModules(functionsDir: string): Promise<LoadedModules> {
  const all = listFiles(functionsDir);
  // Generated code is JavaScript plus declarations; only the JavaScript is a module.
  const generated = all.filter(
    (f) => f.startsWith("_generated/") && /\.[cm]?[jt]s$/.test(f) && !/\.d\.[cm]?ts$/.test(f),
  );
  if (generated.length === 0) {
    throw new Error(
      `no _generated/ code under ${functionsDir}: run \`npm run codegen\` first ` +
        "(convex-test needs it to locate the functions root)",
    );
  }
  const entries = all.filter((f) => !f.startsWith("_generated/") && isEntryPoint(f));

  const modules: Record<string, () => Promise<unknown>> = {};
  for (const rel of [...generated, ...entries]) {
    const url = pathToFileURL(join(functionsDir, rel)).href;
    modules[join(functionsDir, rel)] = () => import(url);
  }

  const functions = new Map<string, RegisteredFunction>();
  let schema: unknown = undefined;
  for (const rel of entries) {
    let exports: Record<string, unknown>;
    try {
      exports = (await modules[join(functionsDir, rel)]()) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`failed to load convex/${rel}: ${String(err)}`, { cause: err });
    }
    const modulePath = modulePathOf(rel);
    if (modulePath === "schema") {
      schema = exports.default;
      continue;
    }
    for (const [name, value] of Object.entries(exports)) {
      const found = describe(value);
      if (found === null) continue;
      const path = `${modulePath}:${name}`;
      functions.set(path, { path, ...found });
    }
  }
  return { modules, schema, functions };
}
