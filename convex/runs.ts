/**
 * Runs: one Temporal workflow run executing a work order.
 *
 * Internal (the worker and operators, with the admin or deploy key): start, updateStatus,
 * getDashboard, listAll, getLatestForWorkOrderAsOperator, getTimelineAsOperator.
 * Public, for the owner of the run's work order (the chat UI): list, getLatestForWorkOrder,
 * getTimeline. Another user's run answers NOT_FOUND like a missing one.
 */
import { v, type Value } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import {
  internalMutation,
  internalQuery,
  type MutationCtx,
  type QueryCtx,
} from "./_generated/server";
import { getAnyOrThrow, getOwnRunOrThrow, getOwnWorkOrderOrThrow, userQuery } from "./lib/auth";
import { fail } from "./lib/errors";
import { recordStateChange } from "./lib/events";
import {
  assertSizeWithin,
  optionalTimestamp,
  optionalWholeNumber,
  requireCommitSha,
  requireRepo,
  requireText,
  requireTimestamp,
  requireUrl,
  resolveLimit,
} from "./lib/guards";
import { MAX_ID_LENGTH, MAX_URL_LENGTH } from "./lib/contract";
import {
  countNewRun,
  countRunMove,
  getRunOrThrow,
  getWorkOrderOrThrow,
  latestRunOf,
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
 * the dispatcher has not yet done so. The run is owned by the order's user.
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
      userId: workOrder.userId,
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
    const run = { _id: runId, workflowRequestId: fields.workflowRequestId };
    await recordStateChange(ctx, run, { run: true }, "running", startedAt, { branch });
    return runId;
  },
});

/** Token counts of the agent's turns, as Codex reports them. */
const usageArg = v.object({
  inputTokens: v.number(),
  cachedInputTokens: v.number(),
  outputTokens: v.number(),
});

/** The usage totals' one row (created on first use). */
async function addUsage(
  ctx: MutationCtx,
  delta: { inputTokens: number; cachedInputTokens: number; outputTokens: number; agentMs: number },
  now: number,
): Promise<void> {
  if (Object.values(delta).every((n) => n === 0)) return;
  const row = await ctx.db.query("usage_totals").first();
  if (row === null) {
    await ctx.db.insert("usage_totals", { ...delta, updatedAt: now });
    return;
  }
  await ctx.db.patch("usage_totals", row._id, {
    inputTokens: row.inputTokens + delta.inputTokens,
    cachedInputTokens: row.cachedInputTokens + delta.cachedInputTokens,
    outputTokens: row.outputTokens + delta.outputTokens,
    agentMs: row.agentMs + delta.agentMs,
    updatedAt: now,
  });
}

/**
 * Move a run to `status` under the transition table and mirror it onto the work order (where
 * the order's own table allows). Repeating the current status is a no-op (`changed: false`,
 * other fields ignored); a refused move is INVALID_TRANSITION. A terminal status sets `endedAt`
 * (given, else now); `failureReason`, `prUrl`, `prNumber`, `commitSha`, `usage` (token counts),
 * `agentMs` and `finalMessage` (the agent's last message, at most 64 KiB) are stored when
 * given, and the usage totals of the dashboard move by what changed.
 */
export const updateStatus = internalMutation({
  args: {
    runId: v.id("runs"),
    status: workStatus,
    endedAt: v.optional(v.number()),
    failureReason: v.optional(v.any()),
    prUrl: v.optional(v.string()),
    prNumber: v.optional(v.number()),
    commitSha: v.optional(v.string()),
    usage: v.optional(usageArg),
    agentMs: v.optional(v.number()),
    finalMessage: v.optional(v.string()),
  },
  returns: v.object({ runId: v.id("runs"), status: workStatus, changed: v.boolean() }),
  handler: async (ctx, args) => {
    const endedAt = optionalTimestamp("endedAt", args.endedAt);
    assertSizeWithin("failureReason", args.failureReason);
    assertSizeWithin("finalMessage", args.finalMessage);
    const prUrl = args.prUrl === undefined ? undefined : requireUrl("prUrl", args.prUrl);
    const prNumber = optionalWholeNumber("prNumber", args.prNumber, 1);
    const commitSha = requireCommitSha(args.commitSha);
    const inputTokens = optionalWholeNumber("usage.inputTokens", args.usage?.inputTokens);
    const cachedInputTokens = optionalWholeNumber(
      "usage.cachedInputTokens",
      args.usage?.cachedInputTokens,
    );
    const outputTokens = optionalWholeNumber("usage.outputTokens", args.usage?.outputTokens);
    const agentMs = optionalWholeNumber("agentMs", args.agentMs);

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
      ...(prNumber !== undefined ? { prNumber } : {}),
      ...(commitSha !== undefined ? { commitSha } : {}),
      ...(inputTokens !== undefined ? { inputTokens } : {}),
      ...(cachedInputTokens !== undefined ? { cachedInputTokens } : {}),
      ...(outputTokens !== undefined ? { outputTokens } : {}),
      ...(agentMs !== undefined ? { agentMs } : {}),
      ...(args.finalMessage !== undefined ? { finalMessage: args.finalMessage } : {}),
    });
    const delta = (given: number | undefined, stored: number | undefined) =>
      given === undefined ? 0 : given - (stored ?? 0);
    await addUsage(
      ctx,
      {
        inputTokens: delta(inputTokens, run.inputTokens),
        cachedInputTokens: delta(cachedInputTokens, run.cachedInputTokens),
        outputTokens: delta(outputTokens, run.outputTokens),
        agentMs: delta(agentMs, run.agentMs),
      },
      now,
    );
    await countRunMove(ctx, run.status, args.status, now);
    const reason: Record<string, Value> =
      args.failureReason === undefined ? {} : { reason: args.failureReason };
    await recordStateChange(ctx, run, { run: true }, args.status, at, reason);
    const workOrder = await ctx.db.get("workflow_requests", run.workflowRequestId);
    if (workOrder !== null) await moveWorkOrder(ctx, workOrder, args.status, "skip", now);
    return { runId: run._id, status: args.status, changed: true };
  },
});

const usageTotals = v.object({
  inputTokens: v.number(),
  cachedInputTokens: v.number(),
  outputTokens: v.number(),
  agentMs: v.number(),
});

/**
 * For operators: run counts by status (from the counter table: five indexed reads), the most
 * recently started runs of every user (default 20, at most 100), and the usage totals.
 */
export const getDashboard = internalQuery({
  args: { limit: v.optional(v.number()) },
  returns: v.object({ counts: statusCounts, recent: v.array(runDoc), usage: usageTotals }),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const counts = await readRunCounts(ctx);
    const recent = await ctx.db.query("runs").withIndex("by_started_at").order("desc").take(limit);
    const totals = await ctx.db.query("usage_totals").first();
    const usage = {
      inputTokens: totals?.inputTokens ?? 0,
      cachedInputTokens: totals?.cachedInputTokens ?? 0,
      outputTokens: totals?.outputTokens ?? 0,
      agentMs: totals?.agentMs ?? 0,
    };
    return { counts, recent, usage };
  },
});

/** The caller's runs newest first (by startedAt), optionally of one status (default 20, at
 * most 100). */
export const list = userQuery({
  args: { status: v.optional(workStatus), limit: v.optional(v.number()) },
  returns: v.array(runDoc),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const status = args.status;
    const ordered =
      status === undefined
        ? ctx.db
            .query("runs")
            .withIndex("by_user_and_started_at", (q) => q.eq("userId", ctx.userId))
            .order("desc")
        : ctx.db
            .query("runs")
            .withIndex("by_user_and_status_and_started_at", (q) =>
              q.eq("userId", ctx.userId).eq("status", status),
            )
            .order("desc");
    return await ordered.take(limit);
  },
});

/** For operators: every user's runs newest first, optionally of one status (default 20, at
 * most 100). */
export const listAll = internalQuery({
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

/** The most recently started run of one of the caller's work orders, or null if it has none
 * yet. NOT_FOUND for an order that is not the caller's. */
export const getLatestForWorkOrder = userQuery({
  args: { workflowRequestId: v.string() },
  returns: v.union(runDoc, v.null()),
  handler: async (ctx, args) =>
    await latestRunOf(ctx, (await getOwnWorkOrderOrThrow(ctx, args.workflowRequestId))._id),
});

/** For operators: the same for any work order. */
export const getLatestForWorkOrderAsOperator = internalQuery({
  args: { workflowRequestId: v.string() },
  returns: v.union(runDoc, v.null()),
  handler: async (ctx, args) =>
    await latestRunOf(
      ctx,
      (await getAnyOrThrow(ctx, "workflow_requests", args.workflowRequestId))._id,
    ),
});

const timelineArgs = { runId: v.string(), cursor: optionalCursor, limit: v.optional(v.number()) };
const timelineResult = v.object({
  run: runDoc,
  workOrder: v.union(schema.doc("workflow_requests"), v.null()),
  steps: v.array(schema.doc("steps")),
  artifacts: v.array(schema.doc("artifacts")),
  events: v.array(schema.doc("events")),
  continueCursor: v.string(),
  isDone: v.boolean(),
});

async function timelineOf(
  ctx: QueryCtx,
  run: Doc<"runs">,
  cursor: string | null | undefined,
  limit: number,
) {
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
    .paginate({ cursor: cursor ?? null, numItems: limit });
  return {
    run,
    workOrder,
    steps,
    artifacts,
    events: page.page,
    continueCursor: page.continueCursor,
    isDone: page.isDone,
  };
}

/**
 * One of the caller's runs with its work order, steps, artifacts and one page of events, all
 * in time order. Steps: started ones by startedAt (then creation), then not-yet-started ones by
 * creation; steps and artifacts are bounded at TIMELINE_ITEM_LIMIT. Events by createdAt, a page
 * of `limit` (default 100, at most 500) from `cursor`; pass `continueCursor` back until
 * `isDone`. NOT_FOUND for a run that is not the caller's, does not exist, or for a `runId`
 * that is not a run id at all.
 */
export const getTimeline = userQuery({
  args: timelineArgs,
  returns: timelineResult,
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 100, 500);
    return await timelineOf(ctx, await getOwnRunOrThrow(ctx, args.runId), args.cursor, limit);
  },
});

/** For operators: the timeline of any run, as getTimeline shapes it. */
export const getTimelineAsOperator = internalQuery({
  args: timelineArgs,
  returns: timelineResult,
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 100, 500);
    return await timelineOf(ctx, await getAnyOrThrow(ctx, "runs", args.runId), args.cursor, limit);
  },
});
