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
import { expect } from "vitest";
import { api, internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import type { ErrorCode, ErrorData } from "./lib/errors";
import schema from "./schema";

/** Every module under convex/, lazily imported; the `_generated` key locates the root. */
export const modules = import.meta.glob("./**/*.*s");

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

/** A session with one user message in it. */
export async function seedMessage(t: T, content = "fix the flaky test in ci") {
  const sessionId = await t.mutation(api.sessions.create, { userId: "user-1", title: "chat" });
  const messageId = await t.mutation(api.threads.append, { sessionId, role: "user", content });
  return { sessionId, messageId };
}

/** A queued work order created from a fresh message. */
export async function seedWorkOrder(t: T, content?: string) {
  const { sessionId, messageId } = await seedMessage(t, content);
  const workOrderId = await t.mutation(api.workOrders.createFromMessage, {
    sessionId,
    triggerMessageId: messageId,
    summary: "Fix the flaky test",
    repo: "proompteng/lab",
  });
  return { sessionId, messageId, workOrderId };
}

export function startArgs(workflowRequestId: Id<"workflow_requests">, runSuffix = "1") {
  return {
    workflowRequestId,
    temporalWorkflowId: `work-order-${workflowRequestId}`,
    temporalRunId: `run-${runSuffix}`,
    taskQueue: "jangar",
    workerId: "worker-a",
    repo: "proompteng/lab",
    branch: "codex/fix-flaky-test",
    startedAt: 1_700_000_000_000,
  };
}

/** A work order with one running run. */
export async function seedRun(t: T, startedAt = 1_700_000_000_000) {
  const seeded = await seedWorkOrder(t);
  const runId = await t.mutation(internal.runs.start, {
    ...startArgs(seeded.workOrderId),
    startedAt,
  });
  return { ...seeded, runId };
}
