/** artifacts:add. */
import { describe, expect, test, vi } from "vitest";
import { internal } from "./_generated/api";
import { expectConvexError, newTest, NOW, seedRun, type T, useFixedClock } from "./test.setup";

useFixedClock();

async function artifactCount(t: T) {
  return await t.run(async (ctx) => (await ctx.db.query("artifacts").take(100)).length);
}

describe("artifacts:add", () => {
  test("stores the artifact; createdAt defaults to now", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    vi.setSystemTime(NOW + 1000);
    const id = await t.mutation(internal.artifacts.add, {
      runId,
      type: "pr",
      url: "https://github.com/o/r/pull/1",
      label: "PR #1",
      idempotencyKey: "run-1:pr",
    });
    expect(await t.run((ctx) => ctx.db.get("artifacts", id))).toMatchObject({
      runId,
      type: "pr",
      url: "https://github.com/o/r/pull/1",
      label: "PR #1",
      idempotencyKey: "run-1:pr",
      createdAt: NOW + 1000,
    });
  });

  test("the same idempotencyKey twice: same id, one row, the first content kept", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = {
      runId,
      type: "diff" as const,
      url: "https://example.com/a.diff",
      label: "diff",
      idempotencyKey: "k1",
      createdAt: NOW - 5,
    };
    const first = await t.mutation(internal.artifacts.add, args);
    const second = await t.mutation(internal.artifacts.add, { ...args, label: "retry" });
    expect(second).toBe(first);
    expect(await artifactCount(t)).toBe(1);
    expect((await t.run((ctx) => ctx.db.get("artifacts", first)))?.label).toBe("diff");
  });

  test("keys are scoped to the run", async () => {
    const t = newTest();
    const a = (await seedRun(t)).runId;
    const b = (await seedRun(t)).runId;
    const base = {
      type: "log" as const,
      url: "https://e.com/l",
      label: "log",
      idempotencyKey: "k",
    };
    const x = await t.mutation(internal.artifacts.add, { ...base, runId: a });
    const y = await t.mutation(internal.artifacts.add, { ...base, runId: b });
    expect(x).not.toBe(y);
    expect(await artifactCount(t)).toBe(2);
  });

  test("validation and NOT_FOUND", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const base = {
      runId,
      type: "file" as const,
      url: "https://e.com/f",
      label: "f",
      idempotencyKey: "k",
    };
    for (const args of [
      { ...base, url: "" },
      { ...base, url: "has space" },
      { ...base, label: " " },
      { ...base, idempotencyKey: "" },
      { ...base, idempotencyKey: "k".repeat(513) },
      { ...base, createdAt: -1 },
    ]) {
      await expectConvexError(t.mutation(internal.artifacts.add, args), "INVALID_ARGUMENT");
    }
    expect(await artifactCount(t)).toBe(0);
    await t.run((ctx) => ctx.db.delete("runs", runId));
    await expectConvexError(t.mutation(internal.artifacts.add, base), "NOT_FOUND");
  });
});
