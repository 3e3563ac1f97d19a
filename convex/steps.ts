/**
 * Steps: the activities, hooks and checks of a run, one document per (run, step name).
 *
 * Internal: the worker records each step as it moves. Activity retries and out-of-order
 * deliveries mean an update can arrive late; status only moves forward (pending < running <
 * terminal), so a late `running` after `succeeded` changes nothing. Each status the step takes
 * is mirrored by a `state_change` event written in the same transaction, so the timeline never
 * shows a status without its event or the other way round.
 */
import { convexToJson, v, type Value } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import { fail } from "./lib/errors";
import { recordStateChange } from "./lib/events";
import {
  assertSizeWithin,
  optionalTimestamp,
  optionalWholeNumber,
  requireText,
  requireUrl,
} from "./lib/guards";
import { MAX_ID_LENGTH } from "./lib/contract";
import { getRunOrThrow, storedUrlOrThrow } from "./lib/lifecycle";
import { classifyStepTransition, isTerminalStepStatus } from "./lib/transitions";
import { stepKind, stepStatus, type StepStatus } from "./lib/validators";

/** Statuses that mean the step actually ran, so a missing startedAt defaults to now. */
const RAN: readonly StepStatus[] = ["running", "succeeded", "failed"];

/** The `state_change` event of the status a step just took, timed like the step. */
async function recordStepState(
  ctx: MutationCtx,
  run: Doc<"runs">,
  step: Pick<Doc<"steps">, "_id" | "name" | "status" | "startedAt" | "endedAt" | "payload">,
  now: number,
): Promise<void> {
  if (step.status === "pending") return; // nothing has happened yet
  // Writes race: a step's end can land before its start. A step that ran still gets its
  // `running` event (at its start), so every timeline reads running -> end.
  if (step.status !== "running" && step.status !== "skipped" && step.startedAt !== undefined) {
    await recordStateChange(ctx, run, { step }, "running", step.startedAt);
  }
  const at = isTerminalStepStatus(step.status) ? step.endedAt : step.startedAt;
  const reason = (step.payload as { reason?: unknown } | undefined)?.reason;
  const extra: Record<string, Value> =
    step.status === "skipped" && typeof reason === "string" ? { reason } : {};
  await recordStateChange(ctx, run, { step }, step.status, at ?? now, extra);
}

function sameValue(a: Value | undefined, b: Value | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return JSON.stringify(convexToJson(a)) === JSON.stringify(convexToJson(b));
}

/**
 * Insert or update the step `name` of a run.
 * - New step: stored as given; startedAt defaults to now for running/succeeded/failed, endedAt
 *   to now for a terminal status.
 * - Existing step: a higher-ranked status is applied; the same non-terminal status may fill in
 *   payload/logUrl; a lower rank, or anything after a terminal status, is ignored. The first
 *   startedAt and endedAt are kept. `kind` is fixed by the first call. `attempts` (how many
 *   times the step's activity ran) is stored when given, like payload; so are the stored files
 *   the step names (`logStorageId`, and `checkpointStorageId`: the workspace checkpoint later
 *   steps restore, kept until the run ends; see files:sweep).
 * Answers the stored status and whether this call wrote anything.
 */
export const appendOrUpdate = internalMutation({
  args: {
    runId: v.id("runs"),
    name: v.string(),
    kind: stepKind,
    status: stepStatus,
    startedAt: v.optional(v.number()),
    endedAt: v.optional(v.number()),
    payload: v.optional(v.any()),
    logUrl: v.optional(v.string()),
    logStorageId: v.optional(v.id("_storage")),
    checkpointStorageId: v.optional(v.id("_storage")),
    attempts: v.optional(v.number()),
  },
  returns: v.object({ stepId: v.id("steps"), status: stepStatus, changed: v.boolean() }),
  handler: async (ctx, args) => {
    const name = requireText("name", args.name, MAX_ID_LENGTH);
    const startedAt = optionalTimestamp("startedAt", args.startedAt);
    const endedAt = optionalTimestamp("endedAt", args.endedAt);
    assertSizeWithin("payload", args.payload);
    if (args.logUrl !== undefined && args.logStorageId !== undefined) {
      fail("INVALID_ARGUMENT", "pass at most one of logUrl and logStorageId.");
    }
    let logUrl = args.logUrl === undefined ? undefined : requireUrl("logUrl", args.logUrl);
    if (args.logStorageId !== undefined) logUrl = await storedUrlOrThrow(ctx, args.logStorageId);
    if (args.checkpointStorageId !== undefined) {
      await storedUrlOrThrow(ctx, args.checkpointStorageId); // it must exist
    }
    const attempts = optionalWholeNumber("attempts", args.attempts, 1, 1000);

    const run = await getRunOrThrow(ctx, args.runId);
    const now = Date.now();
    const terminal = isTerminalStepStatus(args.status);
    const existing = await ctx.db
      .query("steps")
      .withIndex("by_run_and_name", (q) => q.eq("runId", run._id).eq("name", name))
      .unique();

    if (existing === null) {
      const fields = {
        runId: run._id,
        name,
        kind: args.kind,
        status: args.status,
        startedAt: startedAt ?? (RAN.includes(args.status) ? now : undefined),
        endedAt: terminal ? (endedAt ?? now) : undefined,
        payload: args.payload,
        logUrl,
        logStorageId: args.logStorageId,
        checkpointStorageId: args.checkpointStorageId,
        attempts,
        updatedAt: now,
      };
      const stepId = await ctx.db.insert("steps", fields);
      await recordStepState(ctx, run, { _id: stepId, ...fields }, now);
      return { stepId, status: args.status, changed: true };
    }

    const transition = classifyStepTransition(existing.status, args.status);
    if (transition === "stale") {
      return { stepId: existing._id, status: existing.status, changed: false };
    }

    const next: Partial<Doc<"steps">> = {};
    if (transition === "advance") next.status = args.status;
    if (existing.startedAt === undefined) {
      const start = startedAt ?? (RAN.includes(args.status) ? now : undefined);
      if (start !== undefined) next.startedAt = start;
    }
    if (terminal && existing.endedAt === undefined) next.endedAt = endedAt ?? now;
    if (args.payload !== undefined && !sameValue(existing.payload, args.payload)) {
      next.payload = args.payload;
    }
    if (logUrl !== undefined && logUrl !== existing.logUrl) next.logUrl = logUrl;
    if (args.logStorageId !== undefined && args.logStorageId !== existing.logStorageId) {
      next.logStorageId = args.logStorageId;
    }
    if (
      args.checkpointStorageId !== undefined &&
      args.checkpointStorageId !== existing.checkpointStorageId
    ) {
      next.checkpointStorageId = args.checkpointStorageId;
    }
    if (attempts !== undefined && attempts !== existing.attempts) next.attempts = attempts;

    if (Object.keys(next).length === 0) {
      return { stepId: existing._id, status: existing.status, changed: false };
    }
    await ctx.db.patch("steps", existing._id, { ...next, updatedAt: now });
    if (next.status !== undefined) {
      await recordStepState(ctx, run, { ...existing, ...next }, now);
    }
    return { stepId: existing._id, status: next.status ?? existing.status, changed: true };
  },
});
