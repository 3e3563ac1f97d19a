/**
 * Names and visibility exactly as README.md lists them: the worker's writers and the dispatcher's
 * helpers are internal (only callable with the admin key), chat-side functions and UI reads
 * are public, and every function declares `args` and `returns` validators.
 */
import { describe, expect, test } from "vitest";
import * as artifacts from "./artifacts";
import * as events from "./events";
import * as files from "./files";
import * as runs from "./runs";
import * as sessions from "./sessions";
import * as steps from "./steps";
import * as threads from "./threads";
import * as workOrders from "./workOrders";

type Kind = "query" | "mutation";
type Visibility = "public" | "internal";

const CONTRACT: Record<string, [Kind, Visibility]> = {
  "sessions:create": ["mutation", "public"],
  "sessions:list": ["query", "public"],
  "sessions:getWithThreads": ["query", "public"],
  "threads:append": ["mutation", "public"],
  "workOrders:createFromMessage": ["mutation", "public"],
  "workOrders:listBySession": ["query", "public"],
  "workOrders:get": ["query", "public"],
  "workOrders:listQueued": ["query", "internal"],
  "workOrders:markDispatched": ["mutation", "internal"],
  // Added beyond the seed: the dispatcher (worker/runtime/dispatcher.py) calls it for an order it cannot run.
  "workOrders:reject": ["mutation", "internal"],
  "workOrders:getForJob": ["query", "internal"],
  "runs:start": ["mutation", "internal"],
  "runs:updateStatus": ["mutation", "internal"],
  "runs:getDashboard": ["query", "public"],
  "runs:list": ["query", "public"],
  "runs:getLatestForWorkOrder": ["query", "public"],
  "runs:getTimeline": ["query", "public"],
  "steps:appendOrUpdate": ["mutation", "internal"],
  "artifacts:add": ["mutation", "internal"],
  "events:append": ["mutation", "internal"],
  "events:appendBatch": ["mutation", "internal"],
  "files:generateUploadUrl": ["mutation", "internal"],
  "files:getUrl": ["query", "internal"],
};

const MODULES: Record<string, Record<string, unknown>> = {
  sessions,
  threads,
  workOrders,
  runs,
  steps,
  artifacts,
  events,
  files,
};

type Registered = {
  isQuery?: boolean;
  isMutation?: boolean;
  isAction?: boolean;
  isPublic?: boolean;
  isInternal?: boolean;
  exportArgs: () => string;
  exportReturns: () => string;
};

function registeredFunctions(): Record<string, Registered> {
  const found: Record<string, Registered> = {};
  for (const [moduleName, exports] of Object.entries(MODULES)) {
    for (const [name, value] of Object.entries(exports)) {
      const fn = value as Partial<Registered>;
      if (typeof value === "function" && (fn.isQuery || fn.isMutation || fn.isAction)) {
        found[`${moduleName}:${name}`] = fn as Registered;
      }
    }
  }
  return found;
}

describe("function registry", () => {
  test("exactly the contract's functions are exported", () => {
    expect(Object.keys(registeredFunctions()).sort()).toEqual(Object.keys(CONTRACT).sort());
  });

  test.each(Object.entries(CONTRACT))("%s is a %s, %s", (path, [kind, visibility]) => {
    const fn = registeredFunctions()[path];
    expect(fn, path).toBeDefined();
    expect(Boolean(fn.isQuery)).toBe(kind === "query");
    expect(Boolean(fn.isMutation)).toBe(kind === "mutation");
    expect(Boolean(fn.isInternal)).toBe(visibility === "internal");
    expect(Boolean(fn.isPublic)).toBe(visibility === "public");
  });

  test.each(Object.keys(CONTRACT))("%s declares args and returns validators", (path) => {
    const fn = registeredFunctions()[path];
    expect(JSON.parse(fn.exportArgs()).type).toBe("object");
    expect(JSON.parse(fn.exportReturns())).not.toBeNull();
  });
});
