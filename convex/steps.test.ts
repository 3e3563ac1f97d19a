/** steps:appendOrUpdate. */
import { describe, expect, test, vi } from "vitest";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { MAX_VALUE_BYTES } from "./lib/contract";
import { STEP_STATUS_RANK, classifyStepTransition } from "./lib/transitions";
import { STEP_STATUSES } from "./lib/validators";
import { expectConvexError, newTest, NOW, seedRun, type T, useFixedClock } from "./test.setup";

useFixedClock();

async function getStep(t: T, stepId: Id<"steps">) {
  const step = await t.run((ctx) => ctx.db.get("steps", stepId));
  if (step === null) throw new Error("step vanished");
  return step;
}

async function stepCount(t: T) {
  return await t.run(async (ctx) => (await ctx.db.query("steps").take(100)).length);
}

describe("steps:appendOrUpdate", () => {
  test("inserts a new step with its fields", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    vi.setSystemTime(NOW + 1000);
    const result = await t.mutation(internal.steps.appendOrUpdate, {
      runId,
      name: "codex",
      kind: "activity",
      status: "running",
      startedAt: NOW - 10,
      payload: { prompt: "fix it" },
      logUrl: "https://logs.example.com/codex",
    });
    expect(result).toEqual({ stepId: expect.any(String), status: "running", changed: true });
    expect(await getStep(t, result.stepId)).toMatchObject({
      runId,
      name: "codex",
      kind: "activity",
      status: "running",
      startedAt: NOW - 10,
      payload: { prompt: "fix it" },
      logUrl: "https://logs.example.com/codex",
      updatedAt: NOW + 1000,
    });
  });

  test("defaults: startedAt now once running, endedAt now once terminal; pending has neither", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = { runId, name: "lint", kind: "check" as const };
    const { stepId } = await t.mutation(internal.steps.appendOrUpdate, {
      ...args,
      status: "pending",
    });
    let step = await getStep(t, stepId);
    expect(step.startedAt).toBeUndefined();
    expect(step.endedAt).toBeUndefined();
    vi.setSystemTime(NOW + 100);
    await t.mutation(internal.steps.appendOrUpdate, { ...args, status: "running" });
    vi.setSystemTime(NOW + 200);
    await t.mutation(internal.steps.appendOrUpdate, { ...args, status: "succeeded" });
    step = await getStep(t, stepId);
    expect(step).toMatchObject({ status: "succeeded", startedAt: NOW + 100, endedAt: NOW + 200 });
  });

  test("upsert on (run, name): one row per name and run", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const { runId: otherRun } = await seedRun(t);
    const a = await t.mutation(internal.steps.appendOrUpdate, {
      runId,
      name: "clone",
      kind: "activity",
      status: "running",
    });
    const b = await t.mutation(internal.steps.appendOrUpdate, {
      runId,
      name: "clone",
      kind: "activity",
      status: "succeeded",
    });
    const c = await t.mutation(internal.steps.appendOrUpdate, {
      runId: otherRun,
      name: "clone",
      kind: "activity",
      status: "running",
    });
    expect(b.stepId).toBe(a.stepId);
    expect(c.stepId).not.toBe(a.stepId);
    expect(await stepCount(t)).toBe(2);
  });

  test("a late running after succeeded changes nothing", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = { runId, name: "codex", kind: "activity" as const };
    await t.mutation(internal.steps.appendOrUpdate, { ...args, status: "running", startedAt: NOW });
    const done = await t.mutation(internal.steps.appendOrUpdate, {
      ...args,
      status: "succeeded",
      endedAt: NOW + 50,
      payload: { exitCode: 0 },
    });
    const before = await getStep(t, done.stepId);
    vi.setSystemTime(NOW + 999);
    const late = await t.mutation(internal.steps.appendOrUpdate, {
      ...args,
      status: "running",
      startedAt: NOW + 500,
      payload: { stale: true },
    });
    expect(late).toEqual({ stepId: done.stepId, status: "succeeded", changed: false });
    expect(await getStep(t, done.stepId)).toEqual(before);
  });

  test("the same call twice: the second answers changed:false and writes nothing", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = {
      runId,
      name: "codex",
      kind: "activity" as const,
      status: "running" as const,
      startedAt: NOW,
      payload: { a: 1, nested: { b: [1, 2] } },
    };
    const first = await t.mutation(internal.steps.appendOrUpdate, args);
    const before = await getStep(t, first.stepId);
    vi.setSystemTime(NOW + 10);
    const second = await t.mutation(internal.steps.appendOrUpdate, args);
    expect(second).toEqual({ stepId: first.stepId, status: "running", changed: false });
    expect(await getStep(t, first.stepId)).toEqual(before);
  });

  test("the first startedAt is kept; the same status may fill in payload and logUrl", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = { runId, name: "codex", kind: "activity" as const };
    const { stepId } = await t.mutation(internal.steps.appendOrUpdate, {
      ...args,
      status: "running",
      startedAt: NOW,
    });
    const update = await t.mutation(internal.steps.appendOrUpdate, {
      ...args,
      status: "running",
      startedAt: NOW + 5000,
      payload: { progress: 0.5 },
      logUrl: "https://logs.example.com/1",
    });
    expect(update.changed).toBe(true);
    expect(await getStep(t, stepId)).toMatchObject({
      status: "running",
      startedAt: NOW,
      payload: { progress: 0.5 },
      logUrl: "https://logs.example.com/1",
    });
    await t.mutation(internal.steps.appendOrUpdate, {
      ...args,
      status: "failed",
      startedAt: NOW + 7000,
    });
    expect((await getStep(t, stepId)).startedAt).toBe(NOW);
  });

  test("one terminal status never replaces another", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = { runId, name: "tests", kind: "check" as const };
    await t.mutation(internal.steps.appendOrUpdate, { ...args, status: "failed" });
    const again = await t.mutation(internal.steps.appendOrUpdate, { ...args, status: "succeeded" });
    expect(again).toMatchObject({ status: "failed", changed: false });
  });

  // Every (from, to) pair: the stored status after the update follows the ordering.
  const pairs = STEP_STATUSES.flatMap((from) => STEP_STATUSES.map((to) => [from, to] as const));
  test.each(pairs)("step %s -> %s", async (from, to) => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const args = { runId, name: "s", kind: "hook" as const };
    await t.mutation(internal.steps.appendOrUpdate, { ...args, status: from });
    const result = await t.mutation(internal.steps.appendOrUpdate, { ...args, status: to });
    const kind = classifyStepTransition(from, to);
    const expected = kind === "advance" ? to : from;
    expect(result.status).toBe(expected);
    expect(result.changed).toBe(kind === "advance");
    expect((await getStep(t, result.stepId)).status).toBe(expected);
    expect(STEP_STATUS_RANK[expected]).toBeGreaterThanOrEqual(STEP_STATUS_RANK[from]);
  });

  test("validation: blank name, bad logUrl, bad timestamps, payload over 64 KiB", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const base = { runId, name: "codex", kind: "activity" as const, status: "running" as const };
    for (const args of [
      { ...base, name: "" },
      { ...base, logUrl: "" },
      { ...base, startedAt: -5 },
      { ...base, endedAt: Number.POSITIVE_INFINITY },
    ]) {
      await expectConvexError(t.mutation(internal.steps.appendOrUpdate, args), "INVALID_ARGUMENT");
    }
    const err = await expectConvexError(
      t.mutation(internal.steps.appendOrUpdate, {
        ...base,
        payload: { output: "o".repeat(MAX_VALUE_BYTES) },
      }),
      "TOO_LARGE",
    );
    expect(err.message).toContain("payload is");
    expect(err.message).toContain("the limit is 65536 bytes (64 KiB)");
    const huge = await expectConvexError(
      t.mutation(internal.steps.appendOrUpdate, { ...base, payload: "p".repeat(2 * 1024 * 1024) }),
      "TOO_LARGE",
    );
    expect(huge.message).toContain("payload is 2097154 bytes serialized");
    expect(await stepCount(t)).toBe(0);
  });

  test("an unknown run is NOT_FOUND", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    await t.run((ctx) => ctx.db.delete("runs", runId));
    await expectConvexError(
      t.mutation(internal.steps.appendOrUpdate, {
        runId,
        name: "x",
        kind: "activity",
        status: "pending",
      }),
      "NOT_FOUND",
    );
  });

  test("attempts is stored when given, like payload; a bad count is INVALID_ARGUMENT", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const base = { runId, name: "run_agent", kind: "activity" as const };
    const { stepId } = await t.mutation(internal.steps.appendOrUpdate, {
      ...base,
      status: "running",
      attempts: 1,
    });
    expect((await getStep(t, stepId)).attempts).toBe(1);
    await t.mutation(internal.steps.appendOrUpdate, { ...base, status: "succeeded", attempts: 2 });
    expect(await getStep(t, stepId)).toMatchObject({ status: "succeeded", attempts: 2 });
    // After a terminal status nothing changes, attempts included.
    await t.mutation(internal.steps.appendOrUpdate, { ...base, status: "failed", attempts: 3 });
    expect((await getStep(t, stepId)).attempts).toBe(2);
    for (const attempts of [0, 1.5]) {
      await expectConvexError(
        t.mutation(internal.steps.appendOrUpdate, {
          ...base,
          name: "x",
          status: "running",
          attempts,
        }),
        "INVALID_ARGUMENT",
      );
    }
  });
});
