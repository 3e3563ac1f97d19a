/** threads:append. */
import { describe, expect, test, vi } from "vitest";
import { api } from "./_generated/api";
import { MAX_CONTENT_BYTES, MAX_VALUE_BYTES } from "./lib/contract";
import { type AsUser, asUser, expectConvexError, newTest, useFixedClock } from "./test.setup";

useFixedClock();

async function session(t: ReturnType<typeof newTest>) {
  return await asUser(t, "u1").mutation(api.sessions.create, { title: "chat" });
}

function u1(t: ReturnType<typeof newTest>): AsUser {
  return asUser(t, "u1");
}

async function messageCount(t: ReturnType<typeof newTest>) {
  return await t.run(async (ctx) => (await ctx.db.query("chat_messages").take(100)).length);
}

describe("threads:append", () => {
  test("appends the message and touches the session's updatedAt in the same call", async () => {
    const t = newTest();
    const sessionId = await session(t);
    vi.setSystemTime(1_700_000_005_000);
    const id = await u1(t).mutation(api.threads.append, {
      sessionId,
      role: "user",
      content: "please fix ci",
      metadata: { source: "web", attachments: [1, 2] },
    });
    const [message, s] = await t.run(async (ctx) => [
      await ctx.db.get("chat_messages", id),
      await ctx.db.get("chat_sessions", sessionId),
    ]);
    expect(message).toMatchObject({
      sessionId,
      role: "user",
      content: "please fix ci",
      metadata: { source: "web", attachments: [1, 2] },
      createdAt: 1_700_000_005_000,
    });
    expect(s?.updatedAt).toBe(1_700_000_005_000);
    expect(s?.createdAt).toBe(1_700_000_000_000);
  });

  test("without clientMessageId every call appends", async () => {
    const t = newTest();
    const sessionId = await session(t);
    const a = await u1(t).mutation(api.threads.append, { sessionId, role: "user", content: "x" });
    const b = await u1(t).mutation(api.threads.append, { sessionId, role: "user", content: "x" });
    expect(a).not.toBe(b);
    expect(await messageCount(t)).toBe(2);
  });

  test("a retry with the same clientMessageId returns the same id and writes nothing", async () => {
    const t = newTest();
    const sessionId = await session(t);
    const args = { sessionId, role: "user" as const, content: "x", clientMessageId: "c-1" };
    const first = await u1(t).mutation(api.threads.append, args);
    vi.setSystemTime(1_700_000_009_000);
    const second = await u1(t).mutation(api.threads.append, args);
    expect(second).toBe(first);
    expect(await messageCount(t)).toBe(1);
    const s = await t.run((ctx) => ctx.db.get("chat_sessions", sessionId));
    expect(s?.updatedAt).toBe(1_700_000_000_000);
  });

  test("the same clientMessageId in another session is a different message", async () => {
    const t = newTest();
    const s1 = await session(t);
    const s2 = await session(t);
    const a = await u1(t).mutation(api.threads.append, {
      sessionId: s1,
      role: "user",
      content: "x",
      clientMessageId: "c-1",
    });
    const b = await u1(t).mutation(api.threads.append, {
      sessionId: s2,
      role: "user",
      content: "x",
      clientMessageId: "c-1",
    });
    expect(a).not.toBe(b);
  });

  test("a reused clientMessageId with other content is a CONFLICT", async () => {
    const t = newTest();
    const sessionId = await session(t);
    await u1(t).mutation(api.threads.append, {
      sessionId,
      role: "user",
      content: "x",
      clientMessageId: "c-1",
    });
    await expectConvexError(
      u1(t).mutation(api.threads.append, {
        sessionId,
        role: "user",
        content: "y",
        clientMessageId: "c-1",
      }),
      "CONFLICT",
    );
    expect(await messageCount(t)).toBe(1);
  });

  test("validation: blank content, blank clientMessageId, oversized content or metadata", async () => {
    const t = newTest();
    const sessionId = await session(t);
    await expectConvexError(
      u1(t).mutation(api.threads.append, { sessionId, role: "user", content: " \n" }),
      "INVALID_ARGUMENT",
    );
    await expectConvexError(
      u1(t).mutation(api.threads.append, {
        sessionId,
        role: "user",
        content: "x",
        clientMessageId: "",
      }),
      "INVALID_ARGUMENT",
    );
    const big = await expectConvexError(
      u1(t).mutation(api.threads.append, {
        sessionId,
        role: "user",
        content: "x".repeat(MAX_CONTENT_BYTES + 1),
      }),
      "TOO_LARGE",
    );
    expect(big.message).toContain(`limit is ${MAX_CONTENT_BYTES} bytes`);
    const meta = await expectConvexError(
      u1(t).mutation(api.threads.append, {
        sessionId,
        role: "user",
        content: "x",
        metadata: { blob: "m".repeat(MAX_VALUE_BYTES) },
      }),
      "TOO_LARGE",
    );
    expect(meta.message).toMatch(/^metadata is \d+ bytes serialized; the limit is 65536 bytes/);
    expect(await messageCount(t)).toBe(0);
  });

  test("a missing session is NOT_FOUND", async () => {
    const t = newTest();
    const sessionId = await session(t);
    await t.run((ctx) => ctx.db.delete("chat_sessions", sessionId));
    await expectConvexError(
      u1(t).mutation(api.threads.append, { sessionId, role: "user", content: "x" }),
      "NOT_FOUND",
    );
  });

  test("an unknown role is refused by the argument validator", async () => {
    const t = newTest();
    const sessionId = await session(t);
    await expect(
      // @ts-expect-error role outside the union
      u1(t).mutation(api.threads.append, { sessionId, role: "robot", content: "x" }),
    ).rejects.toThrow(/Validator error/);
  });

  test("clients append only user messages: assistant and system are INVALID_ARGUMENT", async () => {
    const t = newTest();
    const sessionId = await session(t);
    for (const role of ["assistant", "system"] as const) {
      const err = await expectConvexError(
        u1(t).mutation(api.threads.append, { sessionId, role, content: "I am the system" }),
        "INVALID_ARGUMENT",
      );
      expect(err.message).toContain("clients append only");
    }
    expect(await messageCount(t)).toBe(0);
    const id = await u1(t).mutation(api.threads.append, { sessionId, content: "no role given" });
    expect((await t.run((ctx) => ctx.db.get("chat_messages", id)))?.role).toBe("user");
  });
});
