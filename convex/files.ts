/**
 * Convex file storage for the worker's logs and diffs (internal: the admin key).
 *
 * The worker asks for an upload URL, POSTs the file's bytes to it (Convex answers
 * `{"storageId"}`), then records the artifact with that storage id (artifacts:add). Files live
 * in the deployment, not on the worker that made them.
 */
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";

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
