/**
 * Runs: one Temporal workflow run executing a work order.
 *
 * Internal (the worker, with the admin key): start, updateStatus.
 * Public (UI and CLI reads): getDashboard, list, getLatestForWorkOrder, getTimeline.
 */
import { v, type Value } from "convex/values";
import { internalMutation, query } from "./_generated/server";
import { fail } from "./lib/errors";
import { recordStateChange } from "./lib/events";
import {
  MAX_ID_LENGTH,
  MAX_URL_LENGTH,
  assertSizeWithin,
  boundedText,
  optionalTimestamp,
  requireCommitSha,
  requireRepo,
  requireText,
  requireTimestamp,
  requireUrl,
  resolveLimit,
} from "./lib/guards";
import {
  countNewRun,
  countRunMove,
  getRunByStringOrThrow,
  getRunOrThrow,
  getWorkOrderOrThrow,
  moveWorkOrder,
  readRunCounts,
} from "./lib/lifecycle";
import { classifyWorkTransition, describeRefusal, isTerminalWorkStatus } from "./lib/transitions";
import { optionalCursor, statusCounts, workStatus } from "./lib/validators";
import schema from "./schema";

/** Most steps and artifacts getTimeline returns for one run. */
export const TIMELINE_ITEM_LIMIT = 500;

const runDoc = schema.doc("runs");

function token(field: string, value: string): string {
  return requireText(field, value, MAX_ID_LENGTH, { singleToken: true });
}

/**
 * Record that a workflow run started, as status `running`, and move its work order from queued
 * to running (already running is fine; a terminal order is INVALID_TRANSITION). Idempotent on
 * (temporalWorkflowId, temporalRunId): a repeat returns the first run's id and writes nothing;
 * the same pair for another work order is a CONFLICT. Links the order to the workflow id if
 * the dispatcher has not yet done so. Writes the run's `running` event in the same transaction.
 */
export const start = internalMutation({
  args: {
    workflowRequestId: v.id("workflow_requests"),
    temporalWorkflowId: v.string(),
    temporalRunId: v.string(),
    taskQueue: v.string(),
    workerId: v.string(),
    repo: v.string(),
    branch: v.string(),
    startedAt: v.number(),
  },
  returns: v.id("runs"),
  handler: async (ctx, args) => {
    const temporalWorkflowId = token("temporalWorkflowId", args.temporalWorkflowId);
    const temporalRunId = token("temporalRunId", args.temporalRunId);
    const taskQueue = token("taskQueue", args.taskQueue);
    const workerId = requireText("workerId", args.workerId, MAX_ID_LENGTH);
    const repo = requireRepo(args.repo);
    const branch = token("branch", args.branch);
    const startedAt = requireTimestamp("startedAt", args.startedAt);

    const existing = await ctx.db
      .query("runs")
      .withIndex("by_temporal_workflow_id_and_temporal_run_id", (q) =>
        q.eq("temporalWorkflowId", temporalWorkflowId).eq("temporalRunId", temporalRunId),
      )
      .unique();
    if (existing !== null) {
      if (existing.workflowRequestId !== args.workflowRequestId) {
        fail(
          "CONFLICT",
          `workflow ${temporalWorkflowId} run ${temporalRunId} is already recorded for work ` +
            `order ${existing.workflowRequestId}, not ${args.workflowRequestId}.`,
        );
      }
      return existing._id;
    }

    const now = Date.now();
    const workOrder = await getWorkOrderOrThrow(ctx, args.workflowRequestId);
    await moveWorkOrder(ctx, workOrder, "running", "throw", now);
    if (workOrder.temporalWorkflowId === undefined) {
      await ctx.db.patch("workflow_requests", workOrder._id, {
        temporalWorkflowId,
        updatedAt: now,
      });
    }
    const fields = {
      workflowRequestId: args.workflowRequestId,
      temporalWorkflowId,
      temporalRunId,
      taskQueue,
      status: "running" as const,
      workerId,
      repo,
      branch,
      startedAt,
      updatedAt: now,
    };
    const runId = await ctx.db.insert("runs", fields);
    await countNewRun(ctx, "running", now);
    const run = { _id: runId, _creationTime: now, ...fields };
    await recordStateChange(ctx, run, { run: true }, "running", startedAt, { branch });
    return runId;
  },
});

/**
 * Move a run to `status` under the transition table and mirror it onto the work order (where
 * the order's own table allows). Repeating the current status is a no-op (`changed: false`,
 * other fields ignored); a refused move is INVALID_TRANSITION. A terminal status sets `endedAt`
 * (given, else now); `failureReason`, `prUrl` and `commitSha` are stored when given. The run's
 * `state_change` event (with the failure reason) is written in the same transaction.
 */
export const updateStatus = internalMutation({
  args: {
    runId: v.id("runs"),
    status: workStatus,
    endedAt: v.optional(v.number()),
    failureReason: v.optional(v.any()),
    prUrl: v.optional(v.string()),
    commitSha: v.optional(v.string()),
    usage: v.optional(
      v.object({ inputTokens: v.number(), cachedInputTokens: v.number(), outputTokens: v.number() }),
    ),
    agentMs: v.optional(v.number()),
    finalMessage: v.optional(v.string()),
  },
  returns: v.object({ runId: v.id("runs"), status: workStatus, changed: v.boolean() }),
  handler: async (ctx, args) => {
    const endedAt = optionalTimestamp("endedAt", args.endedAt);
    assertSizeWithin("failureReason", args.failureReason);
    const prUrl = args.prUrl === undefined ? undefined : requireUrl("prUrl", args.prUrl);
    const commitSha = requireCommitSha(args.commitSha);
    for (const [field, value] of Object.entries({ ...args.usage, agentMs: args.agentMs })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
        fail("INVALID_ARGUMENT", `${field} must be a whole number >= 0; got ${value}.`);
      }
    }
    const finalMessage =
      args.finalMessage === undefined ? undefined : boundedText("finalMessage", args.finalMessage, 4000);

    const run = await getRunOrThrow(ctx, args.runId);
    const transition = classifyWorkTransition(run.status, args.status);
    if (transition === "same") return { runId: run._id, status: run.status, changed: false };
    if (transition === "refused") {
      fail("INVALID_TRANSITION", describeRefusal(`run ${run._id}`, run.status, args.status));
    }

    const now = Date.now();
    const at = isTerminalWorkStatus(args.status) ? (endedAt ?? now) : now;
    await ctx.db.patch("runs", run._id, {
      status: args.status,
      updatedAt: now,
      ...(isTerminalWorkStatus(args.status) ? { endedAt: at } : {}),
      ...(args.failureReason !== undefined ? { failureReason: args.failureReason } : {}),
      ...(prUrl !== undefined ? { prUrl } : {}),
      ...(commitSha !== undefined ? { commitSha } : {}),
      ...(args.usage ?? {}),
      ...(args.agentMs !== undefined ? { agentMs: args.agentMs } : {}),
      ...(finalMessage !== undefined ? { finalMessage } : {}),
    });
    await countRunMove(ctx, run.status, args.status, now);
    const reason: Record<string, Value> =
      args.failureReason === undefined ? {} : { reason: args.failureReason };
    await recordStateChange(ctx, run, { run: true }, args.status, at, reason);
    const workOrder = await ctx.db.get("workflow_requests", run.workflowRequestId);
    if (workOrder !== null) await moveWorkOrder(ctx, workOrder, args.status, "skip", now);
    return { runId: run._id, status: args.status, changed: true };
  },
});

/**
 * Run counts by status (from the counter table: five indexed reads) and the most recently
 * started runs (default 20, at most 100).
 */
export const getDashboard = query({
  args: { limit: v.optional(v.number()) },
  returns: v.object({ counts: statusCounts, recent: v.array(runDoc) }),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const counts = await readRunCounts(ctx);
    const recent = await ctx.db.query("runs").withIndex("by_started_at").order("desc").take(limit);
    return { counts, recent };
  },
});

/** Runs newest first (by startedAt), optionally of one status (default 20, at most 100). */
export const list = query({
  args: { status: v.optional(workStatus), limit: v.optional(v.number()) },
  returns: v.array(runDoc),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const status = args.status;
    const ordered =
      status === undefined
        ? ctx.db.query("runs").withIndex("by_started_at").order("desc")
        : ctx.db
            .query("runs")
            .withIndex("by_status_and_started_at", (q) => q.eq("status", status))
            .order("desc");
    return await ordered.take(limit);
  },
});

/** The work order's most recently started run, or null if it has none. */
export const getLatestForWorkOrder = query({
  args: { workflowRequestId: v.id("workflow_requests") },
  returns: v.union(runDoc, v.null()),
  handler: async (ctx, args) =>
    await ctx.db
      .query("runs")
      .withIndex("by_workflow_request_and_started_at", (q) =>
        q.eq("workflowRequestId", args.workflowRequestId),
      )
      .order("desc")
      .first(),
});

/**
 * A run with its work order, steps, artifacts and one page of events, all in time order.
 * Steps: started ones by startedAt (then creation), then not-yet-started ones by creation;
 * steps and artifacts are bounded at TIMELINE_ITEM_LIMIT. Events by createdAt, a page of
 * `limit` (default 100, at most 500) from `cursor`; pass `continueCursor` back until `isDone`.
 * NOT_FOUND if the run does not exist, or if `runId` is not a run id at all.
 */
export const getTimeline = query({
  args: { runId: v.string(), cursor: optionalCursor, limit: v.optional(v.number()) },
  returns: v.object({
    run: runDoc,
    workOrder: v.union(schema.doc("workflow_requests"), v.null()),
    steps: v.array(schema.doc("steps")),
    artifacts: v.array(schema.doc("artifacts")),
    events: v.array(schema.doc("events")),
    continueCursor: v.string(),
    isDone: v.boolean(),
  }),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 100, 500);
    const run = await getRunByStringOrThrow(ctx, args.runId);
    const workOrder = await ctx.db.get("workflow_requests", run.workflowRequestId);
    const stepRows = await ctx.db
      .query("steps")
      .withIndex("by_run_and_started_at", (q) => q.eq("runId", run._id))
      .order("asc")
      .take(TIMELINE_ITEM_LIMIT);
    // The index puts steps without startedAt first; a timeline shows them after started ones.
    const steps = [
      ...stepRows.filter((step) => step.startedAt !== undefined),
      ...stepRows.filter((step) => step.startedAt === undefined),
    ];
    const artifacts = await ctx.db
      .query("artifacts")
      .withIndex("by_run_and_created_at", (q) => q.eq("runId", run._id))
      .order("asc")
      .take(TIMELINE_ITEM_LIMIT);
    const page = await ctx.db
      .query("events")
      .withIndex("by_run_and_created_at", (q) => q.eq("runId", run._id))
      .order("asc")
      .paginate({ cursor: args.cursor ?? null, numItems: limit });
    return {
      run,
      workOrder,
      steps,
      artifacts,
      events: page.page,
      continueCursor: page.continueCursor,
      isDone: page.isDone,
    };
  },
});
