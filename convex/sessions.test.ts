/** sessions:create, sessions:list, sessions:getWithThreads. */
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { api } from "./_generated/api";
import { THREAD_MESSAGE_LIMIT } from "./sessions";
import { expectConvexError, newTest } from "./test.setup";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(1_700_000_000_000);
});
afterEach(() => {
  vi.useRealTimers();
});

describe("sessions:create", () => {
  test("stores the session with createdAt = updatedAt = now", async () => {
    const t = newTest();
    const id = await t.mutation(api.sessions.create, { userId: "u1", title: "First chat" });
    const doc = await t.run((ctx) => ctx.db.get("chat_sessions", id));
    expect(doc).toMatchObject({
      userId: "u1",
      title: "First chat",
      createdAt: 1_700_000_000_000,
      updatedAt: 1_700_000_000_000,
    });
  });

  test("an empty title is allowed; a blank userId is INVALID_ARGUMENT and writes nothing", async () => {
    const t = newTest();
    await t.mutation(api.sessions.create, { userId: "u1", title: "" });
    const err = await expectConvexError(
      t.mutation(api.sessions.create, { userId: "   ", title: "x" }),
      "INVALID_ARGUMENT",
    );
    expect(err.message).toContain("userId must be a non-empty string");
    const count = await t.run(async (ctx) => (await ctx.db.query("chat_sessions").take(10)).length);
    expect(count).toBe(1);
  });

  test("an over-long title is INVALID_ARGUMENT", async () => {
    const t = newTest();
    await expectConvexError(
      t.mutation(api.sessions.create, { userId: "u1", title: "t".repeat(5000) }),
      "INVALID_ARGUMENT",
    );
  });
});

describe("sessions:list", () => {
  test("one user's sessions, most recently updated first, paginated", async () => {
    const t = newTest();
    const ids = [];
    for (let i = 0; i < 5; i++) {
      vi.setSystemTime(1_700_000_000_000 + i * 1000);
      ids.push(await t.mutation(api.sessions.create, { userId: "u1", title: `s${i}` }));
    }
    await t.mutation(api.sessions.create, { userId: "someone-else", title: "other" });
    // Touch the oldest session: it moves to the front.
    vi.setSystemTime(1_700_000_100_000);
    await t.mutation(api.threads.append, { sessionId: ids[0], role: "user", content: "hi" });

    const first = await t.query(api.sessions.list, {
      userId: "u1",
      paginationOpts: { numItems: 3, cursor: null },
    });
    expect(first.page.map((s) => s.title)).toEqual(["s0", "s4", "s3"]);
    expect(first.isDone).toBe(false);
    const second = await t.query(api.sessions.list, {
      userId: "u1",
      paginationOpts: { numItems: 3, cursor: first.continueCursor },
    });
    expect(second.page.map((s) => s.title)).toEqual(["s2", "s1"]);
    expect(second.isDone).toBe(true);
  });
});

describe("sessions:getWithThreads", () => {
  test("the session, its messages oldest first and its work orders", async () => {
    const t = newTest();
    const sessionId = await t.mutation(api.sessions.create, { userId: "u1", title: "c" });
    const other = await t.mutation(api.sessions.create, { userId: "u1", title: "other" });
    const m1 = await t.mutation(api.threads.append, { sessionId, role: "user", content: "one" });
    vi.setSystemTime(1_700_000_001_000);
    await t.mutation(api.threads.append, { sessionId, role: "assistant", content: "two" });
    await t.mutation(api.threads.append, { sessionId: other, role: "user", content: "elsewhere" });
    const workOrderId = await t.mutation(api.workOrders.createFromMessage, {
      sessionId,
      triggerMessageId: m1,
      summary: "do it",
      repo: "o/r",
    });

    const got = await t.query(api.sessions.getWithThreads, { sessionId });
    expect(got.session._id).toBe(sessionId);
    expect(got.messages.map((m) => m.content)).toEqual(["one", "two"]);
    expect(got.workOrders.map((w) => w._id)).toEqual([workOrderId]);
  });

  test("bounded: the latest THREAD_MESSAGE_LIMIT messages, still oldest first", async () => {
    const t = newTest();
    const sessionId = await t.mutation(api.sessions.create, { userId: "u1", title: "long" });
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
    const got = await t.query(api.sessions.getWithThreads, { sessionId });
    expect(got.messages).toHaveLength(THREAD_MESSAGE_LIMIT);
    expect(got.messages[0].content).toBe("m5");
    expect(got.messages.at(-1)?.content).toBe(`m${THREAD_MESSAGE_LIMIT + 4}`);
  });

  test("a missing session is NOT_FOUND", async () => {
    const t = newTest();
    const sessionId = await t.mutation(api.sessions.create, { userId: "u1", title: "gone" });
    await t.run((ctx) => ctx.db.delete("chat_sessions", sessionId));
    await expectConvexError(t.query(api.sessions.getWithThreads, { sessionId }), "NOT_FOUND");
  });
});
