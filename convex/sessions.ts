/**
 * Chat sessions: create one, list a user's sessions, and load a session with its thread.
 *
 * Public: the chat UI calls these directly.
 */
import { paginationOptsValidator, paginationResultValidator } from "convex/server";
import { v } from "convex/values";
import { mutation, query } from "./_generated/server";
import { fail } from "./lib/errors";
import { MAX_ID_LENGTH, MAX_TEXT_LENGTH, boundedText, requireText } from "./lib/guards";
import schema from "./schema";

/** Most recent messages getWithThreads returns (in chronological order). */
export const THREAD_MESSAGE_LIMIT = 200;
/** Most recent work orders getWithThreads returns (in chronological order). */
export const THREAD_WORK_ORDER_LIMIT = 100;

export const create = mutation({
  args: { userId: v.string(), title: v.string() },
  returns: v.id("chat_sessions"),
  handler: async (ctx, args) => {
    const userId = requireText("userId", args.userId, MAX_ID_LENGTH);
    const title = boundedText("title", args.title, MAX_TEXT_LENGTH);
    const now = Date.now();
    return await ctx.db.insert("chat_sessions", { userId, title, createdAt: now, updatedAt: now });
  },
});

/** One user's sessions, most recently updated first, a page at a time. */
export const list = query({
  args: { userId: v.string(), paginationOpts: paginationOptsValidator },
  returns: paginationResultValidator(schema.doc("chat_sessions")),
  handler: async (ctx, args) => {
    const userId = requireText("userId", args.userId, MAX_ID_LENGTH);
    return await ctx.db
      .query("chat_sessions")
      .withIndex("by_user_and_updated_at", (q) => q.eq("userId", userId))
      .order("desc")
      .paginate(args.paginationOpts);
  },
});

/**
 * The session, its latest THREAD_MESSAGE_LIMIT messages oldest first, and its latest
 * THREAD_WORK_ORDER_LIMIT work orders oldest first. NOT_FOUND if the session does not exist.
 */
export const getWithThreads = query({
  args: { sessionId: v.id("chat_sessions") },
  returns: v.object({
    session: schema.doc("chat_sessions"),
    messages: v.array(schema.doc("chat_messages")),
    workOrders: v.array(schema.doc("workflow_requests")),
  }),
  handler: async (ctx, args) => {
    const session = await ctx.db.get("chat_sessions", args.sessionId);
    if (session === null) fail("NOT_FOUND", `chat session ${args.sessionId} does not exist`);
    const latestMessages = await ctx.db
      .query("chat_messages")
      .withIndex("by_session_and_created_at", (q) => q.eq("sessionId", args.sessionId))
      .order("desc")
      .take(THREAD_MESSAGE_LIMIT);
    const latestWorkOrders = await ctx.db
      .query("workflow_requests")
      .withIndex("by_session_and_created_at", (q) => q.eq("sessionId", args.sessionId))
      .order("desc")
      .take(THREAD_WORK_ORDER_LIMIT);
    return {
      session,
      messages: latestMessages.reverse(),
      workOrders: latestWorkOrders.reverse(),
    };
  },
});
