/**
 * Chat threads: append a message to a session.
 *
 * Public: the chat UI (and the assistant side) call it. A client that retries after a network
 * error passes the same `clientMessageId` and gets the first message's id back.
 */
import { v } from "convex/values";
import { mutation } from "./_generated/server";
import { fail } from "./lib/errors";
import { MAX_ID_LENGTH, assertSizeWithin, optionalText, requireContent } from "./lib/guards";
import { messageRole } from "./lib/validators";

/**
 * Append a message and touch the session's `updatedAt` in the same transaction.
 * With `clientMessageId`, a repeat returns the existing message's id and writes nothing; the
 * same id with a different role or content is a CONFLICT (the client reused an id).
 */
export const append = mutation({
  args: {
    sessionId: v.id("chat_sessions"),
    role: messageRole,
    content: v.string(),
    metadata: v.optional(v.any()),
    clientMessageId: v.optional(v.string()),
  },
  returns: v.id("chat_messages"),
  handler: async (ctx, args) => {
    const content = requireContent(args.content);
    assertSizeWithin("metadata", args.metadata);
    const clientMessageId = optionalText("clientMessageId", args.clientMessageId, MAX_ID_LENGTH, {
      singleToken: true,
    });
    const session = await ctx.db.get("chat_sessions", args.sessionId);
    if (session === null) fail("NOT_FOUND", `chat session ${args.sessionId} does not exist`);

    if (clientMessageId !== undefined) {
      const existing = await ctx.db
        .query("chat_messages")
        .withIndex("by_session_and_client_message_id", (q) =>
          q.eq("sessionId", args.sessionId).eq("clientMessageId", clientMessageId),
        )
        .unique();
      if (existing !== null) {
        if (existing.role !== args.role || existing.content !== content) {
          fail(
            "CONFLICT",
            `clientMessageId ${clientMessageId} already names a different message in this ` +
              `session; use a new clientMessageId for a new message.`,
          );
        }
        return existing._id;
      }
    }

    const now = Date.now();
    const messageId = await ctx.db.insert("chat_messages", {
      sessionId: args.sessionId,
      role: args.role,
      content,
      metadata: args.metadata,
      clientMessageId,
      createdAt: now,
    });
    await ctx.db.patch("chat_sessions", args.sessionId, { updatedAt: now });
    return messageId;
  },
});
