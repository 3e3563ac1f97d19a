/**
 * Writing a run's events, deduplicated on an idempotency key.
 *
 * Every event insert goes through `insertEventOnce`, so `events:append`, `events:appendBatch`
 * and the `state_change` events that steps and runs write in the same transaction as their
 * transition all deduplicate the same way: a key already used in the run returns the first
 * event and writes nothing.
 */
import type { Value } from "convex/values";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { assertSizeWithin, optionalTimestamp, requireIdempotencyKey } from "./guards";
import type { EventType } from "./validators";

export interface NewEvent {
  type: EventType;
  data?: Value;
  idempotencyKey: string;
  createdAt?: number;
}

/** What an event needs of its run. */
export type EventRun = Pick<Doc<"runs">, "_id" | "workflowRequestId">;

/** Insert `event` into `run` unless its key was used; returns the event's id and whether new. */
export async function insertEventOnce(
  ctx: MutationCtx,
  run: EventRun,
  event: NewEvent,
  now: number,
): Promise<{ eventId: Id<"events">; inserted: boolean }> {
  assertSizeWithin("data", event.data);
  const idempotencyKey = requireIdempotencyKey(event.idempotencyKey);
  const createdAt = optionalTimestamp("createdAt", event.createdAt);
  const existing = await ctx.db
    .query("events")
    .withIndex("by_run_and_idempotency_key", (q) =>
      q.eq("runId", run._id).eq("idempotencyKey", idempotencyKey),
    )
    .unique();
  if (existing !== null) return { eventId: existing._id, inserted: false };
  const eventId = await ctx.db.insert("events", {
    runId: run._id,
    workflowRequestId: run.workflowRequestId,
    type: event.type,
    data: event.data,
    idempotencyKey,
    createdAt: createdAt ?? now,
  });
  return { eventId, inserted: true };
}

/**
 * The `state_change` event of a transition, written by the mutation that made it. Its key
 * names the subject and the new status, so the same transition recorded twice (a retried
 * write) is one event.
 */
export async function recordStateChange(
  ctx: MutationCtx,
  run: EventRun,
  subject: { step: Pick<Doc<"steps">, "_id" | "name"> } | { run: true },
  status: string,
  createdAt: number,
  extra: Record<string, Value> = {},
): Promise<void> {
  // A step is keyed by its document id: unique per (run, name), whatever the name holds.
  const [key, data] =
    "step" in subject
      ? [
          `state/step/${subject.step._id}/${status}`,
          { step: subject.step.name, status, ...extra },
        ]
      : [`state/run/${status}`, { status, ...extra }];
  await insertEventOnce(
    ctx,
    run,
    { type: "state_change", data, idempotencyKey: key, createdAt },
    createdAt,
  );
}
