/**
 * Names and visibility exactly as README.md lists them: the worker's writers, the dispatcher's
 * helpers, the registry and every read across users are internal (only callable with the admin
 * or deploy key), the chat side's functions are public (and need a signed-in user: auth.test.ts),
 * and every function declares `args` and `returns` validators.
 */
import { describe, expect, test } from "vitest";
import { registeredFunctions } from "./test.setup";

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
  "workOrders:getAsOperator": ["query", "internal"],
  "workOrders:submitAsOperator": ["mutation", "internal"],
  "workOrders:listQueued": ["query", "internal"],
  "workOrders:listDispatchable": ["query", "internal"],
  "workOrders:getForJob": ["query", "internal"],
  "workOrders:retry": ["mutation", "internal"],
  "workOrders:markDispatched": ["mutation", "internal"],
  // Added beyond the seed: the dispatcher (worker/runtime/dispatcher.py) calls it for an order it cannot run.
  "workOrders:reject": ["mutation", "internal"],
  "runs:start": ["mutation", "internal"],
  "runs:updateStatus": ["mutation", "internal"],
  // Aggregates across users are for operators.
  "runs:getDashboard": ["query", "internal"],
  "runs:listAll": ["query", "internal"],
  "runs:list": ["query", "public"],
  "runs:getLatestForWorkOrder": ["query", "public"],
  "runs:getLatestForWorkOrderAsOperator": ["query", "internal"],
  "runs:getTimeline": ["query", "public"],
  "runs:getTimelineAsOperator": ["query", "internal"],
  "steps:appendOrUpdate": ["mutation", "internal"],
  "artifacts:add": ["mutation", "internal"],
  "events:append": ["mutation", "internal"],
  "events:appendBatch": ["mutation", "internal"],
  "files:generateUploadUrl": ["mutation", "internal"],
  "files:getUrl": ["query", "internal"],
  "files:sweep": ["mutation", "internal"],
  "repositories:add": ["mutation", "internal"],
  "repositories:list": ["query", "internal"],
  "repositories:get": ["query", "internal"],
  "repositories:remove": ["mutation", "internal"],
};

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

  const publicPaths = Object.entries(CONTRACT)
    .filter(([, [, visibility]]) => visibility === "public")
    .map(([path]) => path);

  test.each(publicPaths)("%s takes no user id: the user comes from the caller's token", (path) => {
    const args = JSON.parse(registeredFunctions()[path].exportArgs()) as {
      value: Record<string, unknown>;
    };
    const names = Object.keys(args.value).map((name) => name.toLowerCase());
    expect(names.filter((name) => name.includes("user"))).toEqual([]);
  });
});
