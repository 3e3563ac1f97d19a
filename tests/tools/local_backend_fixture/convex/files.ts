/** File storage through the local backend's upload and download routes (see ../README.md). */
import { v } from "convex/values";
import { action, mutation, query } from "./_generated/server";

export const generateUploadUrl = mutation({
  args: {},
  handler: async (ctx) => ctx.storage.generateUploadUrl(),
});

/** What a function sees of a stored file: its URL, its metadata and its `_storage` document. */
export const describe = query({
  args: { id: v.id("_storage") },
  handler: async (ctx, { id }) => ({
    url: await ctx.storage.getUrl(id),
    metadata: await ctx.storage.getMetadata(id),
    doc: await ctx.db.system.get(id),
  }),
});

export const list = query({
  args: {},
  handler: async (ctx) => ctx.db.system.query("_storage").collect(),
});

/** Stores a file from an action, as `ctx.storage.store` does, and returns its id and URL. */
export const storeText = action({
  args: { text: v.string(), contentType: v.string() },
  handler: async (ctx, { text, contentType }) => {
    const id = await ctx.storage.store(new Blob([text], { type: contentType }));
    return { id, url: await ctx.storage.getUrl(id) };
  },
});

/** Reads a file back inside an action. */
export const readText = action({
  args: { id: v.id("_storage") },
  handler: async (ctx, { id }) => {
    const blob = await ctx.storage.get(id);
    return blob === null ? null : await blob.text();
  },
});

export const remove = mutation({
  args: { id: v.id("_storage") },
  handler: async (ctx, { id }) => ctx.storage.delete(id),
});
