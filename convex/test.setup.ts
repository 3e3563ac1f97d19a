/// <reference types="vite/client" />
/**
 * Shared setup for the convex-test suites beside the functions (not deployed: Convex skips
 * files with more than one dot in their name).
 *
 * convex-test runs the real functions against an in-memory mock of the Convex backend; it does
 * not enforce document-size limits and runs one function at a time, so these suites prove the
 * functions' logic, not the backend's.
 */
import { convexTest } from "convex-test";
import { ConvexError } from "convex/values";
import { afterEach, beforeEach, expect, vi } from "vitest";
import { api, internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import type { ErrorCode, ErrorData } from "./lib/errors";
import * as artifacts from "./artifacts";
import * as events from "./events";
import * as files from "./files";
import * as repositories from "./repositories";
import * as runs from "./runs";
import schema from "./schema";
import * as sessions from "./sessions";
import * as steps from "./steps";
import * as threads from "./threads";
import * as workOrders from "./workOrders";

/** Every module under convex/, lazily imported; the `_generated` key locates the root. */
export const modules = import.meta.glob("./**/*.*s");

/** The time every suite starts at (Date only: timers run for real). */
export const NOW = 1_700_000_000_000;

/** Every test of the calling file starts with Date at NOW; a test moves it with setSystemTime. */
export function useFixedClock(): void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(NOW);
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}

export function newTest() {
  return convexTest(schema, modules);
}

export type T = ReturnType<typeof newTest>;

/** Await `promise`, require it to fail with a ConvexError of `code`, and return its data. */
export async function expectConvexError(
  promise: Promise<unknown>,
  code: ErrorCode,
): Promise<ErrorData> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  if (caught === undefined)
    throw new Error(`expected a ConvexError ${code}, but the call succeeded`);
  expect(caught).toBeInstanceOf(ConvexError);
  const data = (caught as ConvexError<ErrorData>).data;
  expect(data).toEqual({ code, message: expect.any(String) });
  return data;
}

/** The issuer of the identities the suites sign in with (convex-test's `withIdentity`). */
export const ISSUER = "https://issuer.test";

/** The user id (`tokenIdentifier`) Convex derives for `subject`. */
export function userIdOf(subject: string): string {
  return `${ISSUER}|${subject}`;
}

/** The test's functions called as the signed-in user `subject`. */
export function asUser(t: T, subject = "user-1") {
  return t.withIdentity({ subject, issuer: ISSUER, name: subject });
}

export type AsUser = ReturnType<typeof asUser>;

/** The repository the seeded orders target, registered with one check. */
export const REPO = "https://github.com/proompteng/lab.git";

/** Register `url` (an operator's `jangar repos add`). */
export async function register(
  t: T,
  url = REPO,
  extra: { checks?: string[]; baseBranch?: string } = {},
) {
  return await t.mutation(internal.repositories.add, { url, checks: ["pytest -q"], ...extra });
}

/** A session of `subject` with one user message in it. */
export async function seedMessage(t: T, content = "fix the flaky test in ci", subject = "user-1") {
  const user = asUser(t, subject);
  const sessionId = await user.mutation(api.sessions.create, { title: "chat" });
  const messageId = await user.mutation(api.threads.append, { sessionId, content });
  return { sessionId, messageId, user };
}

/** A queued chat work order (for a registered repository) created from a fresh message. */
export async function seedWorkOrder(t: T, content?: string, subject = "user-1") {
  const { sessionId, messageId, user } = await seedMessage(t, content, subject);
  await register(t);
  const workOrderId = await user.mutation(api.workOrders.createFromMessage, {
    sessionId,
    triggerMessageId: messageId,
    summary: "Fix the flaky test",
    repo: REPO,
    freshStart: true,
  });
  return { sessionId, messageId, workOrderId, user };
}

export function startArgs(workflowRequestId: Id<"workflow_requests">, runSuffix = "1") {
  return {
    workflowRequestId,
    temporalWorkflowId: `work-order-${workflowRequestId}`,
    temporalRunId: `run-${runSuffix}`,
    taskQueue: "jangar",
    workerId: "worker-a",
    repo: REPO,
    branch: "codex/fix-flaky-test",
    startedAt: 1_700_000_000_000,
  };
}

/** A work order with one running run. */
export async function seedRun(t: T, startedAt = NOW, subject = "user-1") {
  const seeded = await seedWorkOrder(t, undefined, subject);
  const runId = await t.mutation(internal.runs.start, {
    ...startArgs(seeded.workOrderId),
    startedAt,
  });
  return { ...seeded, runId };
}

/** How many documents `table` holds (at most 1000). */
export async function countRows(
  t: T,
  table:
    "chat_sessions" | "chat_messages" | "workflow_requests" | "runs" | "events" | "repositories",
) {
  return await t.run(async (ctx) => (await ctx.db.query(table).take(1000)).length);
}

// --- The registered functions, as the deployment sees them ---------------------------------------

/** Every module that defines functions. */
const MODULES: Record<string, Record<string, unknown>> = {
  repositories,
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

export function registeredFunctions(): Record<string, Registered> {
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
