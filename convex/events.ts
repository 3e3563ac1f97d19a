/**
 * Events of a run: state changes, comments, system notes, in the order they happened.
 *
 * Internal: the worker appends them. Each append carries the caller's idempotencyKey, so a
 * retried activity returns the first event instead of appending a duplicate.
 */
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import { fail } from "./lib/errors";
import { assertSizeWithin, optionalTimestamp, requireIdempotencyKey } from "./lib/guards";
import { getRunOrThrow } from "./lib/lifecycle";
import { eventType } from "./lib/validators";

/**
 * Append an event to a run. `workflowRequestId` must be the run's work order
 * (INVALID_ARGUMENT otherwise). Deduplicated on (runId, idempotencyKey): a second call with
 * the same key returns the first event's id and writes nothing. createdAt defaults to now.
 */
export const append = internalMutation({
  args: {
    runId: v.id("runs"),
    workflowRequestId: v.id("workflow_requests"),
    type: eventType,
    data: v.optional(v.any()),
    idempotencyKey: v.string(),
    createdAt: v.optional(v.number()),
  },
  returns: v.id("events"),
  handler: async (ctx, args) => {
    assertSizeWithin("data", args.data);
    const idempotencyKey = requireIdempotencyKey(args.idempotencyKey);
    const createdAt = optionalTimestamp("createdAt", args.createdAt);

    const run = await getRunOrThrow(ctx, args.runId);
    if (run.workflowRequestId !== args.workflowRequestId) {
      fail(
        "INVALID_ARGUMENT",
        `run ${run._id} belongs to work order ${run.workflowRequestId}, not ` +
          `${args.workflowRequestId}; pass the run's own workflowRequestId.`,
      );
    }
    const existing = await ctx.db
      .query("events")
      .withIndex("by_run_and_idempotency_key", (q) =>
        q.eq("runId", run._id).eq("idempotencyKey", idempotencyKey),
      )
      .unique();
    if (existing !== null) return existing._id;

    return await ctx.db.insert("events", {
      runId: run._id,
      workflowRequestId: run.workflowRequestId,
      type: args.type,
      data: args.data,
      idempotencyKey,
      createdAt: createdAt ?? Date.now(),
    });
  },
});
