/** files:sweep: what no record needs is removed; what a record or a running job needs stays. */
import { describe, expect, test, vi } from "vitest";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { expectConvexError, newTest, NOW, seedRun, type T, useFixedClock } from "./test.setup";

const HOUR = 3_600_000;
const SWEEP = { orphanAgeMs: 24 * HOUR, everyMs: HOUR };

useFixedClock();

async function store(t: T, text: string): Promise<Id<"_storage">> {
  return await t.run(async (ctx) => await ctx.storage.store(new Blob([text])));
}

async function exists(t: T, id: Id<"_storage">): Promise<boolean> {
  return await t.run(async (ctx) => (await ctx.db.system.get(id)) !== null);
}

/** Sweeps until the pass is done, as the worker does; the totals of every page. */
async function sweepPass(t: T, args: { orphanAgeMs: number; everyMs: number; limit?: number }) {
  const total = { pages: 0, released: 0, deleted: 0 };
  for (;;) {
    const page = await t.mutation(internal.files.sweep, args);
    if (!page.due) return total;
    total.pages += 1;
    total.released += page.released;
    total.deleted += page.deleted;
    if (page.passDone) return total;
  }
}

async function recordAgentStep(t: T, runId: Id<"runs">, checkpoint: Id<"_storage">) {
  await t.mutation(internal.steps.appendOrUpdate, {
    runId,
    name: "run_agent",
    kind: "activity",
    status: "succeeded",
    checkpointStorageId: checkpoint,
  });
}

describe("files:sweep", () => {
  test("a file no record names is deleted once older than orphanAgeMs, not before", async () => {
    const t = newTest();
    const orphan = await store(t, "an upload whose attempt died before recording it");
    vi.setSystemTime(NOW + 24 * HOUR - 1000);
    expect(await sweepPass(t, SWEEP)).toMatchObject({ deleted: 0 });
    expect(await exists(t, orphan)).toBe(true);

    vi.setSystemTime(NOW + 26 * HOUR); // past the orphan age and the interval
    expect(await sweepPass(t, SWEEP)).toMatchObject({ deleted: 1, released: 0 });
    expect(await exists(t, orphan)).toBe(false);
  });

  test("files an artifact or a step log names are kept however old", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const diff = await store(t, "diff --git a/x b/x");
    const log = await store(t, "check output");
    await t.mutation(internal.artifacts.add, {
      runId,
      type: "diff",
      storageId: diff,
      label: "diff",
      idempotencyKey: "diff",
    });
    await t.mutation(internal.steps.appendOrUpdate, {
      runId,
      name: "check 1: make test",
      kind: "check",
      status: "succeeded",
      logStorageId: log,
    });
    await t.mutation(internal.runs.updateStatus, { runId, status: "succeeded" });
    vi.setSystemTime(NOW + 1000 * HOUR);
    expect(await sweepPass(t, { ...SWEEP, orphanAgeMs: 0 })).toMatchObject({
      deleted: 0,
      released: 0,
    });
    expect(await exists(t, diff)).toBe(true);
    expect(await exists(t, log)).toBe(true);
  });

  test("a running job's checkpoint is kept; once the run ends it is deleted and unlinked", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const bundle = await store(t, "git bundle");
    await recordAgentStep(t, runId, bundle);
    vi.setSystemTime(NOW + 1000 * HOUR);
    expect(await sweepPass(t, { ...SWEEP, orphanAgeMs: 0 })).toMatchObject({ released: 0 });
    expect(await exists(t, bundle)).toBe(true);

    await t.mutation(internal.runs.updateStatus, { runId, status: "failed" });
    vi.setSystemTime(NOW + 1002 * HOUR);
    expect(await sweepPass(t, SWEEP)).toMatchObject({ released: 1, deleted: 0 });
    expect(await exists(t, bundle)).toBe(false);
    const step = await t.run(async (ctx) => await ctx.db.query("steps").first());
    expect(step?.name).toBe("run_agent");
    expect(step?.checkpointStorageId).toBeUndefined();
  });

  test("one pass in pages shares its cursor; within everyMs of its end nothing runs", async () => {
    const t = newTest();
    for (let i = 0; i < 5; i += 1) await store(t, `orphan ${i}`);
    vi.setSystemTime(NOW + 25 * HOUR);
    expect(await sweepPass(t, { ...SWEEP, limit: 2 })).toEqual({
      pages: 3,
      released: 0,
      deleted: 5,
    });
    vi.setSystemTime(NOW + 25 * HOUR + HOUR - 1);
    const early = await t.mutation(internal.files.sweep, SWEEP);
    expect(early).toEqual({ due: false, checked: 0, released: 0, deleted: 0, passDone: true });
    vi.setSystemTime(NOW + 26 * HOUR + 100); // convex-test's clock ticks a little per call
    expect((await t.mutation(internal.files.sweep, SWEEP)).due).toBe(true);
  });

  test("bad arguments are refused with what was wrong", async () => {
    const t = newTest();
    expect(
      (
        await expectConvexError(
          t.mutation(internal.files.sweep, { orphanAgeMs: -1, everyMs: 0 }),
          "INVALID_ARGUMENT",
        )
      ).message,
    ).toMatch(/orphanAgeMs must be a finite, non-negative/);
    expect(
      (
        await expectConvexError(
          t.mutation(internal.files.sweep, { ...SWEEP, limit: 0 }),
          "INVALID_ARGUMENT",
        )
      ).message,
    ).toMatch(/limit must be a whole number/);
  });
});

describe("steps:appendOrUpdate and stored files", () => {
  test("a step keeps its log's storage id and the checkpoint it names", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const bundle = await store(t, "git bundle");
    await recordAgentStep(t, runId, bundle);
    const step = await t.run(async (ctx) => await ctx.db.query("steps").first());
    expect(step?.checkpointStorageId).toBe(bundle);
  });

  test("a checkpoint that is not stored is refused as NOT_FOUND", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const gone = await store(t, "deleted");
    await t.run(async (ctx) => await ctx.storage.delete(gone));
    const refused = await expectConvexError(recordAgentStep(t, runId, gone), "NOT_FOUND");
    expect(refused.message).toMatch(/does not exist/);
  });
});
