/**
 * Artifacts of a run: PRs, diffs, files, logs, screenshots.
 *
 * Internal: the worker adds them. Each add carries the caller's idempotencyKey, so a retried
 * activity returns the first artifact instead of adding a duplicate.
 */
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import {
  MAX_TEXT_LENGTH,
  optionalTimestamp,
  requireIdempotencyKey,
  requireText,
  requireUrl,
} from "./lib/guards";
import { getRunOrThrow } from "./lib/lifecycle";
import { artifactType } from "./lib/validators";

/**
 * Add an artifact to a run. Deduplicated on (runId, idempotencyKey): a second call with the
 * same key returns the first artifact's id and writes nothing. createdAt defaults to now.
 */
export const add = internalMutation({
  args: {
    runId: v.id("runs"),
    type: artifactType,
    url: v.string(),
    label: v.string(),
    idempotencyKey: v.string(),
    createdAt: v.optional(v.number()),
  },
  returns: v.id("artifacts"),
  handler: async (ctx, args) => {
    const url = requireUrl("url", args.url);
    const label = requireText("label", args.label, MAX_TEXT_LENGTH);
    const idempotencyKey = requireIdempotencyKey(args.idempotencyKey);
    const createdAt = optionalTimestamp("createdAt", args.createdAt);

    const run = await getRunOrThrow(ctx, args.runId);
    const existing = await ctx.db
      .query("artifacts")
      .withIndex("by_run_and_idempotency_key", (q) =>
        q.eq("runId", run._id).eq("idempotencyKey", idempotencyKey),
      )
      .unique();
    if (existing !== null) return existing._id;

    return await ctx.db.insert("artifacts", {
      runId: run._id,
      type: args.type,
      url,
      label,
      idempotencyKey,
      createdAt: createdAt ?? Date.now(),
    });
  },
});
