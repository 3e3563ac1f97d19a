/**
 * Chat sessions: create one, list the caller's sessions, and load one with its thread.
 *
 * Public, for a signed-in user (`Authorization: Bearer <token>`): the owner is the caller and
 * only the owner sees a session; anyone else's session answers NOT_FOUND like a missing one.
 */
import { paginationOptsValidator, paginationResultValidator } from "convex/server";
import { v } from "convex/values";
import { getOwnSessionOrThrow, userMutation, userQuery } from "./lib/auth";
import { boundedText } from "./lib/guards";
import { MAX_TEXT_LENGTH } from "./lib/contract";
import schema from "./schema";

/** Most recent messages getWithThreads returns (in chronological order). */
export const THREAD_MESSAGE_LIMIT = 200;
/** Most recent work orders getWithThreads returns (in chronological order). */
export const THREAD_WORK_ORDER_LIMIT = 100;

/** A new session owned by the caller. */
export const create = userMutation({
  args: { title: v.string() },
  returns: v.id("chat_sessions"),
  handler: async (ctx, args) => {
    const title = boundedText("title", args.title, MAX_TEXT_LENGTH);
    const now = Date.now();
    return await ctx.db.insert("chat_sessions", {
      userId: ctx.userId,
      title,
      createdAt: now,
      updatedAt: now,
    });
  },
});

/** The caller's sessions, most recently updated first, a page at a time. */
export const list = userQuery({
  args: { paginationOpts: paginationOptsValidator },
  returns: paginationResultValidator(schema.doc("chat_sessions")),
  handler: async (ctx, args) =>
    await ctx.db
      .query("chat_sessions")
      .withIndex("by_user_and_updated_at", (q) => q.eq("userId", ctx.userId))
      .order("desc")
      .paginate(args.paginationOpts),
});

/**
 * The session, its latest THREAD_MESSAGE_LIMIT messages oldest first, and its latest
 * THREAD_WORK_ORDER_LIMIT work orders oldest first. NOT_FOUND unless it is the caller's.
 */
export const getWithThreads = userQuery({
  args: { sessionId: v.string() },
  returns: v.object({
    session: schema.doc("chat_sessions"),
    messages: v.array(schema.doc("chat_messages")),
    workOrders: v.array(schema.doc("workflow_requests")),
  }),
  handler: async (ctx, args) => {
    const session = await getOwnSessionOrThrow(ctx, args.sessionId);
    const latestMessages = await ctx.db
      .query("chat_messages")
      .withIndex("by_session_and_created_at", (q) => q.eq("sessionId", session._id))
      .order("desc")
      .take(THREAD_MESSAGE_LIMIT);
    const latestWorkOrders = await ctx.db
      .query("workflow_requests")
      .withIndex("by_session_and_created_at", (q) => q.eq("sessionId", session._id))
      .order("desc")
      .take(THREAD_WORK_ORDER_LIMIT);
    return {
      session,
      messages: latestMessages.reverse(),
      workOrders: latestWorkOrders.reverse(),
    };
  },
});
