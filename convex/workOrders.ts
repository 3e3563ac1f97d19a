/**
 * Work orders (`workflow_requests`): created from a chat message, dispatched to Temporal.
 *
 * Public, for the owner (the chat UI): createFromMessage, listBySession, get.
 * Internal (operators and the worker, with the admin or deploy key): submitAsOperator,
 * getAsOperator, listQueued, listDispatchable, getForJob, markDispatched, reject, retry.
 *
 * Every way of creating an order checks, before it writes anything, every rule the job's input
 * enforces (convex/lib/orders.ts), so an order Convex accepts is one the worker can run.
 */
import { v } from "convex/values";
import type { Doc, Id } from "./_generated/dataModel";
import { internalMutation, internalQuery, type QueryCtx } from "./_generated/server";
import {
  getAnyOrThrow,
  getByString,
  getOwnSessionOrThrow,
  getOwnWorkOrderOrThrow,
  notFound,
  userMutation,
  userQuery,
} from "./lib/auth";
import { MAX_CHECKS, MAX_ID_LENGTH, MAX_TEXT_LENGTH } from "./lib/contract";
import { fail } from "./lib/errors";
import {
  boundedText,
  optionalWholeNumber,
  requireContent,
  requireText,
  resolveLimit,
} from "./lib/guards";
import { codePoints, normalizeRepoUrl } from "./lib/jobRules";
import { getWorkOrderOrThrow, latestRunOf, moveWorkOrder } from "./lib/lifecycle";
import {
  checkOrderFields,
  findRepository,
  insertWorkOrder,
  orderForJob,
  promptOf,
  requireRegistered,
  requireUserIdArg,
} from "./lib/orders";
import { isTerminalWorkStatus } from "./lib/transitions";
import schema from "./schema";

/** Most checks a work order may list (convex/lib/contract.json). */

/** Queued orders listDispatchable considers per call, oldest first. */
export const DISPATCH_SCAN_LIMIT = 500;
/** Active orders (running, or dispatched and not started) it counts against the limits. */
export const ACTIVE_SCAN_LIMIT = 1000;
/** Earlier orders getForJob's `conversation` holds, and the characters of each text. */
export const CONVERSATION_LIMIT = 10;
export const CONVERSATION_TEXT_CHARS = 4000;

const workOrderDoc = schema.doc("workflow_requests");
const jobOrder = workOrderDoc.extend({ prompt: v.string() });
const idsResult = v.object({
  sessionId: v.id("chat_sessions"),
  messageId: v.id("chat_messages"),
  workOrderId: v.id("workflow_requests"),
});

/**
 * Create the work order for a trigger message, for the session's owner. Checks, in order,
 * writing nothing on any refusal:
 * 1. the session and the message are the caller's (NOT_FOUND otherwise) and the message is in
 *    that session (INVALID_ARGUMENT); a second call for the same message returns the first
 *    order's id;
 * 2. `repo` is a registered repository (FORBIDDEN, naming `jangar repos add`);
 * 3. every rule the job's input enforces (INVALID_ARGUMENT): valid and distinct branch names,
 *    a non-blank prompt without NUL of at most MAX_PROMPT_CHARS characters, a non-blank
 *    summary; the order carries no commands: its checks are the registry entry's.
 * The order records the repository as registered, and as `parentWorkOrderId` the session's
 * newest earlier order for the same repository (none with `freshStart`).
 */
export const createFromMessage = userMutation({
  args: {
    sessionId: v.string(),
    triggerMessageId: v.string(),
    summary: v.string(),
    repo: v.string(),
    branchHint: v.optional(v.string()),
    baseBranch: v.optional(v.string()),
    freshStart: v.optional(v.boolean()),
  },
  returns: v.id("workflow_requests"),
  handler: async (ctx, args) => {
    const session = await getOwnSessionOrThrow(ctx, args.sessionId);
    const message = await getByString(ctx, "chat_messages", args.triggerMessageId);
    // The message's session is read only when it is not the one just checked.
    const mine =
      message !== null &&
      (message.sessionId === session._id ||
        (await ctx.db.get("chat_sessions", message.sessionId))?.userId === ctx.userId);
    if (message === null || !mine) {
      fail(
        "NOT_FOUND",
        `chat message ${JSON.stringify(args.triggerMessageId.slice(0, 80))} does not exist`,
      );
    }
    if (message.sessionId !== session._id) {
      fail(
        "INVALID_ARGUMENT",
        `chat message ${message._id} belongs to session ${message.sessionId}, not ` +
          `${session._id}; pass the session the message was appended to.`,
      );
    }
    const existing = await ctx.db
      .query("workflow_requests")
      .withIndex("by_trigger_message", (q) => q.eq("triggerMessageId", message._id))
      .unique();
    if (existing !== null) return existing._id;

    const repository = await requireRegistered(ctx, args.repo);
    checkOrderFields(
      {
        summary: args.summary,
        repo: repository.url,
        prompt: message.content,
        branchHint: args.branchHint,
        baseBranch: args.baseBranch,
      },
      repository,
    );
    return await insertWorkOrder(
      ctx,
      {
        sessionId: session._id,
        triggerMessageId: message._id,
        userId: ctx.userId,
        summary: args.summary,
        repo: repository.url,
        branchHint: args.branchHint,
        baseBranch: args.baseBranch,
        freshStart: args.freshStart,
      },
      Date.now(),
    );
  },
});

/** A session's work orders, newest first (default 20, at most 100); the owner's only. */
export const listBySession = userQuery({
  args: { sessionId: v.string(), limit: v.optional(v.number()) },
  returns: v.array(workOrderDoc),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const session = await getOwnSessionOrThrow(ctx, args.sessionId);
    return await ctx.db
      .query("workflow_requests")
      .withIndex("by_session_and_created_at", (q) => q.eq("sessionId", session._id))
      .order("desc")
      .take(limit);
  },
});

/** One of the caller's work orders; NOT_FOUND for any other id. */
export const get = userQuery({
  args: { workflowRequestId: v.string() },
  returns: workOrderDoc,
  handler: async (ctx, args) => await getOwnWorkOrderOrThrow(ctx, args.workflowRequestId),
});

/** Any work order, for operators; NOT_FOUND if there is none with that id. */
export const getAsOperator = internalQuery({
  args: { workflowRequestId: v.string() },
  returns: workOrderDoc,
  handler: async (ctx, args) =>
    await getAnyOrThrow(ctx, "workflow_requests", args.workflowRequestId),
});

/**
 * An operator's order, in one transaction: the session (created for `userId`, or the existing
 * `sessionId`, which must be that user's), the user message holding `prompt`, and the order.
 * The same checks as createFromMessage, except that the repository need not be registered and
 * `checks` may be given (stored on the order; the registry is never written). Any refusal
 * writes nothing.
 */
export const submitAsOperator = internalMutation({
  args: {
    userId: v.string(),
    title: v.string(),
    repo: v.string(),
    prompt: v.string(),
    branchHint: v.optional(v.string()),
    baseBranch: v.optional(v.string()),
    checks: v.optional(v.array(v.string())),
    sessionId: v.optional(v.string()),
    freshStart: v.optional(v.boolean()),
  },
  returns: idsResult,
  handler: async (ctx, args) => {
    const userId = requireUserIdArg(args.userId);
    const repository = await findRepository(ctx, args.repo);
    checkOrderFields(
      {
        summary: args.title,
        repo: args.repo,
        prompt: args.prompt,
        branchHint: args.branchHint,
        baseBranch: args.baseBranch,
        checks: args.checks,
      },
      repository,
    );
    const content = requireContent(args.prompt);
    const now = Date.now();
    let sessionId: Id<"chat_sessions">;
    if (args.sessionId !== undefined) {
      const session = await getByString(ctx, "chat_sessions", args.sessionId);
      if (session === null) notFound("chat_sessions", args.sessionId);
      if (session.userId !== userId) {
        fail(
          "INVALID_ARGUMENT",
          `chat session ${session._id} belongs to user ${JSON.stringify(session.userId)}, not ` +
            `${JSON.stringify(userId)}; pass its owner as userId.`,
        );
      }
      sessionId = session._id;
    } else {
      sessionId = await ctx.db.insert("chat_sessions", {
        userId,
        title: boundedText("title", args.title, MAX_TEXT_LENGTH),
        createdAt: now,
        updatedAt: now,
      });
    }
    const messageId = await ctx.db.insert("chat_messages", {
      sessionId,
      role: "user",
      content,
      createdAt: now,
    });
    await ctx.db.patch("chat_sessions", sessionId, { updatedAt: now });
    const workOrderId = await insertWorkOrder(
      ctx,
      {
        sessionId,
        triggerMessageId: messageId,
        userId,
        summary: args.title,
        repo: repository?.url ?? args.repo,
        branchHint: args.branchHint,
        baseBranch: args.baseBranch,
        checks: args.checks,
        freshStart: args.freshStart,
      },
      now,
    );
    return { sessionId, messageId, workOrderId };
  },
});

/**
 * Orders waiting for dispatch: status queued and not yet linked to a workflow, oldest first
 * (default 20, at most 100), each as the job runs it: with `prompt` (its trigger message's
 * content), and `checks` and `baseBranch` from the registry entry when the order has none.
 */
export const listQueued = internalQuery({
  args: { limit: v.optional(v.number()) },
  returns: v.array(jobOrder),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const queued = await ctx.db
      .query("workflow_requests")
      .withIndex("by_status_and_temporal_workflow_id_and_created_at", (q) =>
        q.eq("status", "queued").eq("temporalWorkflowId", undefined),
      )
      .order("asc")
      .take(limit);
    return await Promise.all(queued.map((order) => orderForJob(ctx, order)));
  },
});

/**
 * The queued, undispatched orders that may start now, oldest first (default 20, at most 100),
 * shaped as listQueued's. An order is left waiting while:
 * - its user already has `maxPerUser` active orders, or its repository `maxPerRepo` (the
 *   registry entry's `maxConcurrentRuns` overrides `maxPerRepo`). Active: running, or
 *   dispatched and not yet started (at most ACTIVE_SCAN_LIMIT of each are counted);
 * - its parent order (the one it continues) has not ended.
 * Orders picked in this call count too, so one batch never exceeds a limit. At most
 * DISPATCH_SCAN_LIMIT queued orders are considered per call.
 */
export const listDispatchable = internalQuery({
  args: {
    limit: v.optional(v.number()),
    maxPerUser: v.optional(v.number()),
    maxPerRepo: v.optional(v.number()),
  },
  returns: v.array(jobOrder),
  handler: async (ctx, args) => {
    const limit = resolveLimit(args.limit, 20, 100);
    const maxPerUser = optionalWholeNumber("maxPerUser", args.maxPerUser, 1);
    const maxPerRepo = optionalWholeNumber("maxPerRepo", args.maxPerRepo, 1);
    const byIndex = "by_status_and_temporal_workflow_id_and_created_at" as const;
    const active = [
      ...(await ctx.db
        .query("workflow_requests")
        .withIndex(byIndex, (q) => q.eq("status", "running"))
        .take(ACTIVE_SCAN_LIMIT)),
      ...(await ctx.db
        .query("workflow_requests")
        .withIndex(byIndex, (q) => q.eq("status", "queued").gte("temporalWorkflowId", ""))
        .take(ACTIVE_SCAN_LIMIT)),
    ];
    const entries = new Map<string, Doc<"repositories"> | null>();
    const entryFor = async (repo: string) => {
      if (!entries.has(repo)) entries.set(repo, await findRepository(ctx, repo));
      return entries.get(repo) ?? null;
    };
    const repoKey = async (repo: string) => (await entryFor(repo))?.url ?? normalizeRepoUrl(repo);
    const perUser = new Map<string, number>();
    const perRepo = new Map<string, number>();
    const bump = (counts: Map<string, number>, key: string) =>
      counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const order of active) {
      bump(perUser, order.userId);
      bump(perRepo, await repoKey(order.repo));
    }

    const candidates = await ctx.db
      .query("workflow_requests")
      .withIndex(byIndex, (q) => q.eq("status", "queued").eq("temporalWorkflowId", undefined))
      .order("asc")
      .take(DISPATCH_SCAN_LIMIT);
    const picked: (Doc<"workflow_requests"> & { prompt: string })[] = [];
    for (const order of candidates) {
      if (picked.length >= limit) break;
      const entry = await entryFor(order.repo);
      const key = await repoKey(order.repo);
      const repoCap = entry?.maxConcurrentRuns ?? maxPerRepo;
      if (maxPerUser !== undefined && (perUser.get(order.userId) ?? 0) >= maxPerUser) continue;
      if (repoCap !== undefined && (perRepo.get(key) ?? 0) >= repoCap) continue;
      if (order.parentWorkOrderId !== undefined) {
        const parent = await ctx.db.get("workflow_requests", order.parentWorkOrderId);
        if (parent !== null && !isTerminalWorkStatus(parent.status)) continue;
      }
      picked.push(await orderForJob(ctx, order, entry));
      bump(perUser, order.userId);
      bump(perRepo, key);
    }
    return picked;
  },
});

function cut(text: string): string {
  return codePoints(text) <= CONVERSATION_TEXT_CHARS
    ? text
    : [...text].slice(0, CONVERSATION_TEXT_CHARS).join("");
}

const repositoryDoc = schema.doc("repositories");

/**
 * What the worker needs to run an order: the order as the job runs it (checks and base branch
 * resolved as listQueued does), its prompt, its registry entry (null if unregistered), the
 * parent it continues (its branch and what its latest run produced; null when there is none),
 * and the conversation so far: the parent chain's prompts and final messages, oldest first, at
 * most CONVERSATION_LIMIT, each text cut to CONVERSATION_TEXT_CHARS characters.
 */
export const getForJob = internalQuery({
  args: { workflowRequestId: v.string() },
  returns: v.object({
    order: workOrderDoc,
    prompt: v.string(),
    repository: v.union(repositoryDoc, v.null()),
    parent: v.union(
      v.object({
        workOrderId: v.id("workflow_requests"),
        branch: v.string(),
        commitSha: v.optional(v.string()),
        prUrl: v.optional(v.string()),
        prNumber: v.optional(v.number()),
      }),
      v.null(),
    ),
    conversation: v.array(
      v.object({ prompt: v.string(), finalMessage: v.union(v.string(), v.null()) }),
    ),
  }),
  handler: async (ctx, args) => {
    const stored = await getAnyOrThrow(ctx, "workflow_requests", args.workflowRequestId);
    const repository = await findRepository(ctx, stored.repo);
    const { prompt, ...order } = await orderForJob(ctx, stored, repository);

    let parent = null;
    const conversation: { prompt: string; finalMessage: string | null }[] = [];
    let ancestorId = stored.parentWorkOrderId;
    const seen = new Set<string>([stored._id]);
    while (ancestorId !== undefined && conversation.length < CONVERSATION_LIMIT) {
      if (seen.has(ancestorId)) break;
      seen.add(ancestorId);
      const ancestor = await ctx.db.get("workflow_requests", ancestorId);
      if (ancestor === null) break;
      const run = await latestRunOf(ctx, ancestor._id);
      if (parent === null) {
        parent = {
          workOrderId: ancestor._id,
          branch: run?.branch ?? ancestor.branchHint ?? `codex/${ancestor._id}`,
          ...(run?.commitSha !== undefined ? { commitSha: run.commitSha } : {}),
          ...(run?.prUrl !== undefined ? { prUrl: run.prUrl } : {}),
          ...(run?.prNumber !== undefined ? { prNumber: run.prNumber } : {}),
        };
      }
      conversation.push({
        prompt: cut(await promptOf(ctx, ancestor)),
        finalMessage: run?.finalMessage === undefined ? null : cut(run.finalMessage),
      });
      ancestorId = ancestor.parentWorkOrderId;
    }
    return { order, prompt, repository, parent, conversation: conversation.reverse() };
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

/**
 * Run an ended run's order again, as a new order: the same session, user, repository, branch
 * hint, base branch, checks, summary and parent; its trigger a new `system` message holding the
 * same prompt; `retryOfWorkOrderId` naming the order retried. A run that has not ended is a
 * CONFLICT; the same checks as at creation apply. Each call makes a new order.
 */
export const retry = internalMutation({
  args: { runId: v.string() },
  returns: v.object({ workOrderId: v.id("workflow_requests") }),
  handler: async (ctx, args) => {
    const run = await getAnyOrThrow(ctx, "runs", args.runId);
    if (!isTerminalWorkStatus(run.status)) {
      fail(
        "CONFLICT",
        `run ${run._id} is still ${run.status}; retry it once it has ended (or cancel it).`,
      );
    }
    const order = await getWorkOrderOrThrow(ctx, run.workflowRequestId);
    const session = await ctx.db.get("chat_sessions", order.sessionId);
    if (session === null) notFound("chat_sessions", order.sessionId);
    const prompt = await promptOf(ctx, order);
    checkOrderFields(
      {
        summary: order.summary,
        repo: order.repo,
        prompt,
        branchHint: order.branchHint,
        baseBranch: order.baseBranch,
        checks: order.checks,
      },
      await findRepository(ctx, order.repo),
    );
    const now = Date.now();
    const messageId = await ctx.db.insert("chat_messages", {
      sessionId: session._id,
      role: "system",
      content: requireContent(prompt),
      metadata: { retryOfWorkOrderId: order._id, retryOfRunId: run._id },
      createdAt: now,
    });
    await ctx.db.patch("chat_sessions", session._id, { updatedAt: now });
    const workOrderId = await insertWorkOrder(
      ctx,
      {
        sessionId: session._id,
        triggerMessageId: messageId,
        userId: order.userId,
        summary: order.summary,
        repo: order.repo,
        branchHint: order.branchHint,
        baseBranch: order.baseBranch,
        checks: order.checks,
        freshStart: order.freshStart,
        retryOfWorkOrderId: order._id,
        parentWorkOrderId: order.parentWorkOrderId ?? null,
      },
      now,
    );
    return { workOrderId };
  },
});
