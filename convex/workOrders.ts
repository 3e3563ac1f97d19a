/**
 * Work orders (`workflow_requests`): created from a chat message, dispatched to Temporal.
 *
 * Public: createFromMessage, listBySession, get (chat UI).
 * Internal: listQueued, markDispatched, reject (the dispatcher, with the admin key).
 */
import { v } from "convex/values";
import { internalMutation, internalQuery, mutation, query } from "./_generated/server";
import { MAX_CHECKS } from "./lib/contract";
import { fail } from "./lib/errors";
import {
  MAX_ID_LENGTH,
  MAX_TEXT_LENGTH,
  MAX_URL_LENGTH,
  optionalText,
  requireRepo,
  requireText,
  resolveLimit,
} from "./lib/guards";
import { getWorkOrderOrThrow, moveWorkOrder } from "./lib/lifecycle";
import schema from "./schema";

/** Most checks a work order may list (convex/lib/contract.json). */
export { MAX_CHECKS };

const workOrderDoc = schema.doc("workflow_requests");

/**
 * Create the work order for a trigger message. One per message: a second call for the same
 * `triggerMessageId` returns the first order's id and writes nothing. NOT_FOUND if the session
 * or the message does not exist; INVALID_ARGUMENT if the message belongs to another session.
 */
export const createFromMessage = mutation({
  args: {
    sessionId: v.id("chat_sessions"),
    triggerMessageId: v.id("chat_messages"),
    summary: v.string(),
    repo: v.string(),
    branchHint: v.optional(v.string()),
    baseBranch: v.optional(v.string()),
    checks: v.optional(v.array(v.string())),
  },
  returns: v.id("workflow_requests"),
  handler: async (ctx, args) => {
    const summary = requireText("summary", args.summary, MAX_TEXT_LENGTH);
    const repo = requireRepo(args.repo);
    const branchHint = optionalText("branchHint", args.branchHint, MAX_ID_LENGTH, {
      singleToken: true,
    });
    const baseBranch = optionalText("baseBranch", args.baseBranch, MAX_ID_LENGTH, {
      singleToken: true,
    });
    if (args.checks !== undefined && args.checks.length > MAX_CHECKS) {
      fail(
        "INVALID_ARGUMENT",
        `checks has ${args.checks.length} entries; the limit is ${MAX_CHECKS}. Pass fewer checks.`,
      );
    }
    const checks = args.checks?.map((check, i) =>
      requireText(`checks[${i}]`, check, MAX_TEXT_LENGTH),
    );

    const session = await ctx.db.get("chat_sessions", args.sessionId);
    if (session === null) fail("NOT_FOUND", `chat session ${args.sessionId} does not exist`);
    const message = await ctx.db.get("chat_messages", args.triggerMessageId);
    if (message === null) fail("NOT_FOUND", `chat message ${args.triggerMessageId} does not exist`);
    if (message.sessionId !== args.sessionId) {
      fail(
        "INVALID_ARGUMENT",
        `chat message ${args.triggerMessageId} belongs to session ${message.sessionId}, not ` +
          `${args.sessionId}; pass the session the message was appended to.`,
      );
    }

    const existing = await ctx.db
      .query("workflow_requests")
      .withIndex("by_trigger_message", (q) => q.eq("triggerMessageId", args.triggerMessageId))
      .unique();
    if (existing !== null) return existing._id;

    const now = Date.now();
    return await ctx.db.insert("workflow_requests", {
      sessionId: args.sessionId,
      triggerMessageId: args.triggerMessageId,
      summary,
      repo,
      branchHint,
      baseBranch,
      checks,
      status: "queued",
      createdAt: now,
      updatedAt: now,
    });
  },
});

/** A session's work orders, newest first (default 20, at most 100). */
export const listBySession = query({
  args: { sessionId: v.id("chat_sessions"), limit: v.optional(v.number()) },
  returns: v.array(workOrderDoc),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    return await ctx.db
      .query("workflow_requests")
      .withIndex("by_session_and_created_at", (q) => q.eq("sessionId", args.sessionId))
      .order("desc")
      .take(limit);
  },
});

/** One work order; NOT_FOUND if it does not exist. */
export const get = query({
  args: { workflowRequestId: v.id("workflow_requests") },
  returns: workOrderDoc,
  handler: async (ctx, args) => await getWorkOrderOrThrow(ctx, args.workflowRequestId),
});

/**
 * Orders waiting for dispatch: status queued and not yet linked to a workflow, oldest first
 * (default 20, at most 100), each with `prompt`, its trigger message's content.
 */
export const listQueued = internalQuery({
  args: { limit: v.optional(v.number()) },
  returns: v.array(workOrderDoc.extend({ prompt: v.string() })),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const queued = await ctx.db
      .query("workflow_requests")
      .withIndex("by_status_and_temporal_workflow_id_and_created_at", (q) =>
        q.eq("status", "queued").eq("temporalWorkflowId", undefined),
      )
      .order("asc")
      .take(limit);
    return await Promise.all(
      queued.map(async (order) => {
        const message = await ctx.db.get("chat_messages", order.triggerMessageId);
        // Messages are never deleted by this project; the summary keeps the order runnable if
        // one was removed by hand.
        return { ...order, prompt: message?.content ?? order.summary };
      }),
    );
  },
});

/**
 * Everything a job needs to start, read by the worker that runs it (``load_job``): the order,
 * its prompt (the trigger message's content), the repository's registry entry (none yet), the
 * earlier order a follow-up continues (none yet) and the conversation so far.
 */
export const getForJob = internalQuery({
  args: { workflowRequestId: v.string() },
  returns: v.object({
    order: workOrderDoc,
    prompt: v.string(),
    repository: v.null(),
    parent: v.null(),
    conversation: v.array(v.object({ prompt: v.string(), finalMessage: v.optional(v.string()) })),
  }),
  handler: async (ctx, args) => {
    const id = ctx.db.normalizeId("workflow_requests", args.workflowRequestId);
    if (id === null) fail("NOT_FOUND", `work order ${args.workflowRequestId} does not exist`);
    const order = await getWorkOrderOrThrow(ctx, id);
    const message = await ctx.db.get("chat_messages", order.triggerMessageId);
    return {
      order,
      prompt: message?.content ?? order.summary,
      repository: null,
      parent: null,
      conversation: [],
    };
  },
});

/**
 * Link a work order to its Temporal workflow. Idempotent: the same id again answers
 * `changed: false`; a different id already linked is a CONFLICT. Works in any status, since
 * a fast workflow may already have moved the order on before the dispatcher records the link.
 */
export const markDispatched = internalMutation({
  args: { workflowRequestId: v.id("workflow_requests"), temporalWorkflowId: v.string() },
  returns: v.object({ changed: v.boolean() }),
  handler: async (ctx, args) => {
    const temporalWorkflowId = requireText(
      "temporalWorkflowId",
      args.temporalWorkflowId,
      MAX_ID_LENGTH,
      {
        singleToken: true,
      },
    );
    const order = await getWorkOrderOrThrow(ctx, args.workflowRequestId);
    if (order.temporalWorkflowId === temporalWorkflowId) return { changed: false };
    if (order.temporalWorkflowId !== undefined) {
      fail(
        "CONFLICT",
        `work order ${order._id} is already linked to workflow ${order.temporalWorkflowId}; ` +
          `it cannot be linked to ${temporalWorkflowId}.`,
      );
    }
    await ctx.db.patch("workflow_requests", order._id, {
      temporalWorkflowId,
      updatedAt: Date.now(),
    });
    return { changed: true };
  },
});

/**
 * Mark a work order the dispatcher cannot run (its fields fail the workflow's input checks) as
 * failed, with `reason`, so it leaves the queue instead of being listed on every poll. Goes
 * through the transition table: queued or running -> failed; already failed is a no-op
 * (`changed: false`, the first reason kept); succeeded or canceled is INVALID_TRANSITION.
 */
export const reject = internalMutation({
  args: { workflowRequestId: v.id("workflow_requests"), reason: v.string() },
  returns: v.object({ changed: v.boolean() }),
  handler: async (ctx, args) => {
    const reason = requireText("reason", args.reason, MAX_TEXT_LENGTH);
    const order = await getWorkOrderOrThrow(ctx, args.workflowRequestId);
    const now = Date.now();
    const changed = await moveWorkOrder(ctx, order, "failed", "throw", now);
    if (changed) await ctx.db.patch("workflow_requests", order._id, { failureReason: reason });
    return { changed };
  },
});
