/**
 * Convex file storage for the worker's logs and diffs (internal: the admin key).
 *
 * The worker asks for an upload URL, POSTs the file's bytes to it (Convex answers
 * `{"storageId"}`), then records the artifact with that storage id (artifacts:add). Files live
 * in the deployment, not on the worker that made them.
 *
 * files:sweep removes what no record needs any more: the checkpoint bundles of runs that have
 * ended, and files no record names (an attempt that died between its upload and its record).
 */
import { v } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import { fail } from "./lib/errors";
import { requireDuration, resolveLimit } from "./lib/guards";
import { isTerminalWorkStatus } from "./lib/transitions";

const SWEEP_PAGE = 100;
const MAX_SWEEP_PAGE = 500;

/** A short-lived URL to POST one file to (`ctx.storage.generateUploadUrl()`). */
export const generateUploadUrl = internalMutation({
  args: {},
  returns: v.string(),
  handler: async (ctx) => await ctx.storage.generateUploadUrl(),
});

/** The URL Convex serves a stored file at, or null once it is gone. */
export const getUrl = internalQuery({
  args: { storageId: v.id("_storage") },
  returns: v.union(v.string(), v.null()),
  handler: async (ctx, args) => await ctx.storage.getUrl(args.storageId),
});

type Verdict = "keep" | "released" | "orphan";

/** What becomes of one stored file: kept while a record needs it. */
async function judge(ctx: MutationCtx, id: Id<"_storage">): Promise<Verdict> {
  const artifact = await ctx.db
    .query("artifacts")
    .withIndex("by_storage", (q) => q.eq("storageId", id))
    .first();
  if (artifact !== null) return "keep";
  const log = await ctx.db
    .query("steps")
    .withIndex("by_log_storage", (q) => q.eq("logStorageId", id))
    .first();
  if (log !== null) return "keep";
  const holders = await ctx.db
    .query("steps")
    .withIndex("by_checkpoint_storage", (q) => q.eq("checkpointStorageId", id))
    .take(100);
  if (holders.length === 0) return "orphan";
  for (const step of holders) {
    const run = await ctx.db.get("runs", step.runId);
    if (run !== null && !isTerminalWorkStatus(run.status)) return "keep"; // may be restored
  }
  for (const step of holders) {
    await ctx.db.patch("steps", step._id, { checkpointStorageId: undefined });
  }
  return "released";
}

/**
 * One page of the deployment's sweep of stored files. Deleted: the checkpoint bundle of a run
 * that has ended (nothing restores it any more), and a file no artifact or step names once it
 * is older than `orphanAgeMs` (the age keeps an upload whose record is still being written).
 * Kept: every file an artifact or a step log names, and the checkpoint of a run still going.
 *
 * The pass's cursor lives in `file_sweeps`, so any number of workers share one pass: each call
 * continues where the last one stopped, and once a pass ends, calls within `everyMs` of its
 * end do nothing (`due: false`). Callers repeat while `due` and not `passDone`.
 */
export const sweep = internalMutation({
  args: { orphanAgeMs: v.number(), everyMs: v.number(), limit: v.optional(v.number()) },
  returns: v.object({
    due: v.boolean(),
    checked: v.number(),
    released: v.number(),
    deleted: v.number(),
    passDone: v.boolean(),
  }),
  handler: async (ctx, args) => {
    const orphanAgeMs = requireDuration("orphanAgeMs", args.orphanAgeMs);
    const everyMs = requireDuration("everyMs", args.everyMs);
    const limit = resolveLimit(args.limit, SWEEP_PAGE, MAX_SWEEP_PAGE);
    const now = Date.now();
    const state = await ctx.db.query("file_sweeps").first();
    const cursor = state?.cursor ?? null;
    const lastEnd = state?.passEndedAt;
    if (cursor === null && lastEnd !== undefined && now < lastEnd + everyMs) {
      return { due: false, checked: 0, released: 0, deleted: 0, passDone: true };
    }
    const page = await ctx.db.system.query("_storage").paginate({ cursor, numItems: limit });
    let released = 0;
    let deleted = 0;
    for (const file of page.page) {
      const verdict = await judge(ctx, file._id);
      if (verdict === "keep") continue;
      if (verdict === "orphan" && file._creationTime > now - orphanAgeMs) continue;
      await ctx.storage.delete(file._id);
      if (verdict === "released") released += 1;
      else deleted += 1;
    }
    const next = page.isDone
      ? { cursor: null, passEndedAt: now, updatedAt: now }
      : { cursor: page.continueCursor, updatedAt: now };
    if (state === null) await ctx.db.insert("file_sweeps", next);
    else await ctx.db.patch("file_sweeps", state._id, next);
    return { due: true, checked: page.page.length, released, deleted, passDone: page.isDone };
  },
});
