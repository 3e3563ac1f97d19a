/**
 * Events of a run: state changes, comments, system notes, in the order they happened.
 *
 * Internal: the worker appends them. Each append carries the caller's idempotencyKey, so a
 * retried activity returns the first event instead of appending a duplicate. State changes of
 * steps and runs are written by steps:appendOrUpdate and runs:* themselves (lib/events.ts).
 */
import { v } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import { fail } from "./lib/errors";
import { MAX_EVENT_BATCH } from "./lib/contract";
import { insertEventOnce } from "./lib/events";
import { getRunOrThrow } from "./lib/lifecycle";
import { eventType } from "./lib/validators";


const newEvent = {
  type: eventType,
  data: v.optional(v.any()),
  idempotencyKey: v.string(),
  createdAt: v.optional(v.number()),
};

async function runOfWorkOrder(
  ctx: MutationCtx,
  runId: Id<"runs">,
  workflowRequestId: Id<"workflow_requests">,
) {
  const run = await getRunOrThrow(ctx, runId);
  if (run.workflowRequestId !== workflowRequestId) {
    fail(
      "INVALID_ARGUMENT",
      `run ${run._id} belongs to work order ${run.workflowRequestId}, not ` +
        `${workflowRequestId}; pass the run's own workflowRequestId.`,
    );
  }
  return run;
}

/**
 * Append an event to a run. `workflowRequestId` must be the run's work order
 * (INVALID_ARGUMENT otherwise). Deduplicated on (runId, idempotencyKey): a second call with
 * the same key returns the first event's id and writes nothing. createdAt defaults to now.
 */
export const append = internalMutation({
  args: { runId: v.id("runs"), workflowRequestId: v.id("workflow_requests"), ...newEvent },
  returns: v.id("events"),
  handler: async (ctx, args) => {
    const run = await runOfWorkOrder(ctx, args.runId, args.workflowRequestId);
    const { runId: _runId, workflowRequestId: _order, ...event } = args;
    return (await insertEventOnce(ctx, run, event, Date.now())).eventId;
  },
});

/**
 * Append up to MAX_EVENT_BATCH events to a run in one transaction, each deduplicated on its own key
 * (the agent's live progress: one call every few seconds instead of one per event). Answers
 * how many were new. A refused event (too large, a bad key) refuses the whole batch.
 */
export const appendBatch = internalMutation({
  args: {
    runId: v.id("runs"),
    workflowRequestId: v.id("workflow_requests"),
    events: v.array(v.object(newEvent)),
  },
  returns: v.object({ inserted: v.number() }),
  handler: async (ctx, args) => {
    if (args.events.length > MAX_EVENT_BATCH) {
      fail(
        "INVALID_ARGUMENT",
        `events has ${args.events.length} entries; the limit is ${MAX_EVENT_BATCH}. Send smaller batches.`,
      );
    }
    const run = await runOfWorkOrder(ctx, args.runId, args.workflowRequestId);
    const now = Date.now();
    let inserted = 0;
    for (const event of args.events) {
      if ((await insertEventOnce(ctx, run, event, now)).inserted) inserted += 1;
    }
    return { inserted };
  },
});
