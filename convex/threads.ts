/**
 * Chat threads: append a message to a session.
 *
 * Public, for the session's owner. Clients append only `role: "user"` messages: the assistant's
 * and system messages are written by the backend itself (workOrders:retry writes the retry's
 * system message). A client that retries after a network error passes the same
 * `clientMessageId` and gets the first message's id back.
 */
import { v } from "convex/values";
import { getOwnSessionOrThrow, userMutation } from "./lib/auth";
import { fail } from "./lib/errors";
import { assertSizeWithin, optionalText, requireContent } from "./lib/guards";
import { MAX_ID_LENGTH } from "./lib/contract";
import { messageRole } from "./lib/validators";

/**
 * Append a message and touch the session's `updatedAt` in the same transaction.
 * `role` defaults to `user`, and any other role is INVALID_ARGUMENT. NOT_FOUND unless the
 * session is the caller's. With `clientMessageId`, a repeat returns the existing message's id
 * and writes nothing; the same id with other content is a CONFLICT (the client reused an id).
 */
export const append = userMutation({
  args: {
    sessionId: v.string(),
    content: v.string(),
    role: v.optional(messageRole),
    metadata: v.optional(v.any()),
    clientMessageId: v.optional(v.string()),
  },
  returns: v.id("chat_messages"),
  handler: async (ctx, args) => {
    const role = args.role ?? "user";
    if (role !== "user") {
      fail(
        "INVALID_ARGUMENT",
        `role ${JSON.stringify(role)} cannot be appended by a client: clients append only ` +
          `"user" messages.`,
      );
    }
    const content = requireContent(args.content);
    assertSizeWithin("metadata", args.metadata);
    const clientMessageId = optionalText("clientMessageId", args.clientMessageId, MAX_ID_LENGTH, {
      singleToken: true,
    });
    const session = await getOwnSessionOrThrow(ctx, args.sessionId);

    if (clientMessageId !== undefined) {
      const existing = await ctx.db
        .query("chat_messages")
        .withIndex("by_session_and_client_message_id", (q) =>
          q.eq("sessionId", session._id).eq("clientMessageId", clientMessageId),
        )
        .unique();
      if (existing !== null) {
        if (existing.role !== role || existing.content !== content) {
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
      sessionId: session._id,
      role,
      content,
      metadata: args.metadata,
      clientMessageId,
      createdAt: now,
    });
    await ctx.db.patch("chat_sessions", session._id, { updatedAt: now });
    return messageId;
  },
});
