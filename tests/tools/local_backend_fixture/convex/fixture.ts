/** Functions that exercise the local backend itself (see ../README.md). */
import { ConvexError, v } from "convex/values";
import { action, internalQuery, mutation, query } from "./_generated/server";

/** Inserts one document of about `size` bytes: over 1 MiB must be refused. */
export const insertBlob = mutation({
  args: { size: v.number() },
  handler: async (ctx, { size }) => ctx.db.insert("blobs", { data: "x".repeat(size) }),
});

/** Inserts a small document, then patches it past 1 MiB. */
export const growBlob = mutation({
  args: { size: v.number() },
  handler: async (ctx, { size }) => {
    const id = await ctx.db.insert("blobs", { data: "small" });
    await ctx.db.patch(id, { data: "x".repeat(size) });
    return id;
  },
});

export const countBlobs = query({
  args: {},
  handler: async (ctx) => (await ctx.db.query("blobs").collect()).length,
});

/** Returns its argument unchanged, so every value type can be checked on the wire. */
export const echo = query({
  args: { value: v.any() },
  handler: async (_ctx, { value }) => value,
});

export const chatty = mutation({
  args: {},
  handler: async () => {
    console.log("hello", 42);
    console.warn("careful");
    return null;
  },
});

export const crash = mutation({
  args: {},
  handler: async () => {
    throw new Error("boom");
  },
});

export const refuse = mutation({
  args: {},
  handler: async () => {
    throw new ConvexError({ code: "NOPE", message: "refused on purpose" });
  },
});

export const ping = action({
  args: {},
  handler: async () => "pong",
});

export const secret = internalQuery({
  args: {},
  handler: async () => "internal answer",
});

/** A default export is called as `fixture` or `fixture:default`. */
export default query({
  args: {},
  handler: async () => "default export",
});

/** The identity the server verified for this call, or null (anonymous, or an admin key). */
export const whoami = query({
  args: {},
  handler: async (ctx) => ctx.auth.getUserIdentity(),
});

/** The same from an action (actions see the caller's identity too). */
export const whoamiFromAction = action({
  args: {},
  handler: async (ctx) => ctx.auth.getUserIdentity(),
});

/** Every blob's id and creation time, oldest first (restart tests compare them). */
export const listBlobs = query({
  args: {},
  handler: async (ctx) =>
    (await ctx.db.query("blobs").collect()).map((doc) => ({
      id: doc._id,
      creationTime: doc._creationTime,
      size: doc.data.length,
    })),
});

/** Takes an id, then rolls back: the id must never be handed out again, even after a restart. */
export const insertThenFail = mutation({
  args: {},
  handler: async (ctx) => {
    const id = await ctx.db.insert("blobs", { data: "rolled back" });
    throw new Error(`rolled back ${id}`);
  },
});

/** Inserts a document with a note, then removes the note with `patch(id, {note: undefined})`. */
export const insertThenUnsetNote = mutation({
  args: {},
  handler: async (ctx) => {
    const id = await ctx.db.insert("blobs", { data: "kept", note: "removed next" });
    await ctx.db.patch(id, { note: undefined });
    return id;
  },
});

export const getBlob = query({
  args: { id: v.id("blobs") },
  handler: async (ctx, { id }) => await ctx.db.get(id),
});
