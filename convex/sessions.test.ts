/** sessions:create, sessions:list, sessions:getWithThreads (the auth rules: auth.test.ts). */
import { describe, expect, test, vi } from "vitest";
import { api } from "./_generated/api";
import { THREAD_MESSAGE_LIMIT } from "./sessions";
import {
  asUser,
  expectConvexError,
  newTest,
  register,
  REPO,
  useFixedClock,
  userIdOf,
} from "./test.setup";

useFixedClock();

describe("sessions:create", () => {
  test("stores the session for the caller with createdAt = updatedAt = now", async () => {
    const t = newTest();
    const id = await asUser(t, "u1").mutation(api.sessions.create, { title: "First chat" });
    const doc = await t.run((ctx) => ctx.db.get("chat_sessions", id));
    expect(doc).toMatchObject({
      userId: userIdOf("u1"),
      title: "First chat",
      createdAt: 1_700_000_000_000,
      updatedAt: 1_700_000_000_000,
    });
  });

  test("the owner comes from the token, never from an argument", async () => {
    const t = newTest();
    await expect(
      // @ts-expect-error userId is not an argument any more
      asUser(t, "u1").mutation(api.sessions.create, { userId: "someone-else", title: "x" }),
    ).rejects.toThrow(/Validator error/);
  });

  test("an empty title is allowed; an over-long one is INVALID_ARGUMENT", async () => {
    const t = newTest();
    const user = asUser(t, "u1");
    await user.mutation(api.sessions.create, { title: "" });
    await expectConvexError(
      user.mutation(api.sessions.create, { title: "t".repeat(5000) }),
      "INVALID_ARGUMENT",
    );
  });
});

describe("sessions:list", () => {
  test("the caller's sessions, most recently updated first, paginated", async () => {
    const t = newTest();
    const user = asUser(t, "u1");
    const ids = [];
    for (let i = 0; i < 5; i++) {
      vi.setSystemTime(1_700_000_000_000 + i * 1000);
      ids.push(await user.mutation(api.sessions.create, { title: `s${i}` }));
    }
    await asUser(t, "someone-else").mutation(api.sessions.create, { title: "other" });
    // Touch the oldest session: it moves to the front.
    vi.setSystemTime(1_700_000_100_000);
    await user.mutation(api.threads.append, { sessionId: ids[0], content: "hi" });

    const first = await user.query(api.sessions.list, {
      paginationOpts: { numItems: 3, cursor: null },
    });
    expect(first.page.map((s) => s.title)).toEqual(["s0", "s4", "s3"]);
    expect(first.isDone).toBe(false);
    const second = await user.query(api.sessions.list, {
      paginationOpts: { numItems: 3, cursor: first.continueCursor },
    });
    expect(second.page.map((s) => s.title)).toEqual(["s2", "s1"]);
    expect(second.isDone).toBe(true);
    const other = await asUser(t, "someone-else").query(api.sessions.list, {
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(other.page.map((s) => s.title)).toEqual(["other"]);
  });
});

describe("sessions:getWithThreads", () => {
  test("the session, its messages oldest first and its work orders", async () => {
    const t = newTest();
    await register(t);
    const user = asUser(t, "u1");
    const sessionId = await user.mutation(api.sessions.create, { title: "c" });
    const other = await user.mutation(api.sessions.create, { title: "other" });
    const m1 = await user.mutation(api.threads.append, { sessionId, content: "one" });
    vi.setSystemTime(1_700_000_001_000);
    await user.mutation(api.threads.append, { sessionId, content: "two" });
    await user.mutation(api.threads.append, { sessionId: other, content: "elsewhere" });
    const workOrderId = await user.mutation(api.workOrders.createFromMessage, {
      sessionId,
      triggerMessageId: m1,
      summary: "do it",
      repo: REPO,
    });

    const got = await user.query(api.sessions.getWithThreads, { sessionId });
    expect(got.session._id).toBe(sessionId);
    expect(got.messages.map((m) => m.content)).toEqual(["one", "two"]);
    expect(got.workOrders.map((w) => w._id)).toEqual([workOrderId]);
  });

  test("bounded: the latest THREAD_MESSAGE_LIMIT messages, still oldest first", async () => {
    const t = newTest();
    const user = asUser(t, "u1");
    const sessionId = await user.mutation(api.sessions.create, { title: "long" });
    await t.run(async (ctx) => {
      for (let i = 0; i < THREAD_MESSAGE_LIMIT + 5; i++) {
        await ctx.db.insert("chat_messages", {
          sessionId,
          role: "user",
          content: `m${i}`,
          createdAt: 1_700_000_000_000 + i,
        });
      }
    });
    const got = await user.query(api.sessions.getWithThreads, { sessionId });
    expect(got.messages).toHaveLength(THREAD_MESSAGE_LIMIT);
    expect(got.messages[0].content).toBe("m5");
    expect(got.messages.at(-1)?.content).toBe(`m${THREAD_MESSAGE_LIMIT + 4}`);
  });

  test("a missing session and a malformed id are NOT_FOUND", async () => {
    const t = newTest();
    const user = asUser(t, "u1");
    const sessionId = await user.mutation(api.sessions.create, { title: "gone" });
    await t.run((ctx) => ctx.db.delete("chat_sessions", sessionId));
    await expectConvexError(user.query(api.sessions.getWithThreads, { sessionId }), "NOT_FOUND");
    await expectConvexError(
      user.query(api.sessions.getWithThreads, { sessionId: "not-an-id" }),
      "NOT_FOUND",
    );
  });
});
