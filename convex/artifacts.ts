/**
 * Artifacts of a run: PRs, diffs, files, logs, screenshots.
 *
 * Internal: the worker adds them. Each add carries the caller's idempotencyKey, so a retried
 * activity returns the first artifact instead of adding a duplicate. A log or diff is a file in
 * Convex storage (`storageId`); its `url` is the one Convex serves it at.
 */
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import { fail } from "./lib/errors";
import { optionalTimestamp, requireIdempotencyKey, requireText, requireUrl } from "./lib/guards";
import { MAX_TEXT_LENGTH } from "./lib/contract";
import { getRunOrThrow, storedUrlOrThrow } from "./lib/lifecycle";
import { artifactType } from "./lib/validators";

/**
 * Add an artifact to a run: a `url` (a pull request) or a stored file (`storageId`), exactly
 * one of the two. Deduplicated on (runId, idempotencyKey): a second call with the same key
 * returns the first artifact's id and writes nothing; when it carries another stored file (a
 * retried upload), that file is deleted, so a retry leaves neither a second artifact nor an
 * orphan file. createdAt defaults to now.
 */
export const add = internalMutation({
  args: {
    runId: v.id("runs"),
    type: artifactType,
    url: v.optional(v.string()),
    storageId: v.optional(v.id("_storage")),
    label: v.string(),
    idempotencyKey: v.string(),
    createdAt: v.optional(v.number()),
  },
  returns: v.id("artifacts"),
  handler: async (ctx, args) => {
    if ((args.url === undefined) === (args.storageId === undefined)) {
      fail("INVALID_ARGUMENT", "pass exactly one of url and storageId.");
    }
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
    if (existing !== null) {
      if (args.storageId !== undefined && args.storageId !== existing.storageId) {
        await ctx.storage.delete(args.storageId);
      }
      return existing._id;
    }
    let url: string;
    if (args.storageId !== undefined) {
      url = await storedUrlOrThrow(ctx, args.storageId);
    } else {
      url = requireUrl("url", args.url as string);
    }
    return await ctx.db.insert("artifacts", {
      runId: run._id,
      type: args.type,
      url,
      storageId: args.storageId,
      label,
      idempotencyKey,
      createdAt: createdAt ?? Date.now(),
    });
  },
});
