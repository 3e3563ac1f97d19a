/**
 * Status writes shared by runs and work orders, so that each goes through the one transition
 * table and the dashboard counters move in the same transaction as the run they count.
 */
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { fail } from "./errors";
import { classifyWorkTransition, describeRefusal } from "./transitions";
import { WORK_STATUSES, type StatusCounts, type WorkStatus } from "./validators";

/**
 * Move a work order to `to` under the transition table. Returns whether it changed.
 * `onRefused: "throw"` raises INVALID_TRANSITION; `"skip"` leaves the order as it is (used when
 * mirroring a run's status, where the run's own move already succeeded and an order that was,
 * say, canceled meanwhile must keep its status).
 */
export async function moveWorkOrder(
  ctx: MutationCtx,
  workOrder: Doc<"workflow_requests">,
  to: WorkStatus,
  onRefused: "throw" | "skip",
  now: number,
): Promise<boolean> {
  const transition = classifyWorkTransition(workOrder.status, to);
  if (transition === "same") return false;
  if (transition === "refused") {
    if (onRefused === "skip") return false;
    fail(
      "INVALID_TRANSITION",
      describeRefusal(`work order ${workOrder._id}`, workOrder.status, to),
    );
  }
  await ctx.db.patch("workflow_requests", workOrder._id, { status: to, updatedAt: now });
  return true;
}

/** Add `delta` to the counter row of `status`, creating the row on first use. */
async function bumpRunCount(
  ctx: MutationCtx,
  status: WorkStatus,
  delta: number,
  now: number,
): Promise<void> {
  const row = await ctx.db
    .query("run_status_counts")
    .withIndex("by_status", (q) => q.eq("status", status))
    .unique();
  if (row === null) {
    await ctx.db.insert("run_status_counts", { status, count: Math.max(0, delta), updatedAt: now });
  } else {
    await ctx.db.patch("run_status_counts", row._id, {
      count: Math.max(0, row.count + delta),
      updatedAt: now,
    });
  }
}

/** Record a new run with `status` in the counters. */
export async function countNewRun(ctx: MutationCtx, status: WorkStatus, now: number) {
  await bumpRunCount(ctx, status, 1, now);
}

/** Move one run from `from` to `to` in the counters. */
export async function countRunMove(
  ctx: MutationCtx,
  from: WorkStatus,
  to: WorkStatus,
  now: number,
): Promise<void> {
  if (from === to) return;
  await bumpRunCount(ctx, from, -1, now);
  await bumpRunCount(ctx, to, 1, now);
}

/** Read the counters: one indexed lookup per status, 0 for a status never seen. */
export async function readRunCounts(ctx: QueryCtx): Promise<StatusCounts> {
  const counts: StatusCounts = { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
  for (const status of WORK_STATUSES) {
    const row = await ctx.db
      .query("run_status_counts")
      .withIndex("by_status", (q) => q.eq("status", status))
      .unique();
    counts[status] = row?.count ?? 0;
  }
  return counts;
}

/** Load a document named by a typed id or fail with NOT_FOUND (internal functions). */
export async function getRunOrThrow(ctx: QueryCtx, runId: Id<"runs">): Promise<Doc<"runs">> {
  const run = await ctx.db.get("runs", runId);
  if (run === null) fail("NOT_FOUND", `run ${runId} does not exist`);
  return run;
}

export async function getWorkOrderOrThrow(
  ctx: QueryCtx,
  workflowRequestId: Id<"workflow_requests">,
): Promise<Doc<"workflow_requests">> {
  const workOrder = await ctx.db.get("workflow_requests", workflowRequestId);
  if (workOrder === null) fail("NOT_FOUND", `work order ${workflowRequestId} does not exist`);
  return workOrder;
}

/** The most recently started run of a work order, or null if it has none. */
export async function latestRunOf(
  ctx: QueryCtx,
  workOrderId: Id<"workflow_requests">,
): Promise<Doc<"runs"> | null> {
  return await ctx.db
    .query("runs")
    .withIndex("by_workflow_request_and_started_at", (q) => q.eq("workflowRequestId", workOrderId))
    .order("desc")
    .first();
}

/** The URL Convex serves a stored file at; NOT_FOUND when the file does not exist. */
export async function storedUrlOrThrow(ctx: QueryCtx, storageId: Id<"_storage">): Promise<string> {
  const url = await ctx.storage.getUrl(storageId);
  if (url === null) fail("NOT_FOUND", `stored file ${storageId} does not exist`);
  return url;
}
