/** repositories:add, list, get, remove: the operator's registry. */
import { describe, expect, test, vi } from "vitest";
import { internal } from "./_generated/api";
import { MAX_CHECKS } from "./lib/contract";
import { countRows, expectConvexError, newTest, NOW, useFixedClock } from "./test.setup";

useFixedClock();

describe("repositories:add", () => {
  test("registers the normalized URL with every setting; defaults for the rest", async () => {
    const t = newTest();
    const { repositoryId, created } = await t.mutation(internal.repositories.add, {
      url: "HTTPS://GitHub.COM/Acme/App.git/",
      checks: ["pytest -q", "ruff check ."],
      baseBranch: "main",
      agentNetwork: true,
      maxTokens: 1_000_000,
      maxAgentMinutes: 30,
      maxConcurrentRuns: 2,
      webhookUrl: "https://hooks.example/jangar",
    });
    expect(created).toBe(true);
    expect(await t.run((ctx) => ctx.db.get("repositories", repositoryId))).toMatchObject({
      url: "https://github.com/Acme/App.git",
      checks: ["pytest -q", "ruff check ."],
      baseBranch: "main",
      agentNetwork: true,
      checkNetwork: false,
      maxTokens: 1_000_000,
      maxAgentMinutes: 30,
      maxConcurrentRuns: 2,
      webhookUrl: "https://hooks.example/jangar",
      createdAt: NOW,
      updatedAt: NOW,
    });
    const bare = await t.mutation(internal.repositories.add, { url: "/srv/git/app.git" });
    expect(await t.run((ctx) => ctx.db.get("repositories", bare.repositoryId))).toMatchObject({
      url: "/srv/git/app.git",
      checks: [],
      agentNetwork: true, // the agent has what the Codex CLI needs; checks have none
      checkNetwork: false,
    });
  });

  test("adding again replaces the entry (either .git spelling); one row", async () => {
    const t = newTest();
    const first = await t.mutation(internal.repositories.add, {
      url: "https://github.com/acme/app.git",
      checks: ["old"],
      baseBranch: "main",
    });
    vi.setSystemTime(NOW + 5000);
    const again = await t.mutation(internal.repositories.add, {
      url: "https://github.com/acme/app",
      checks: ["new"],
    });
    expect(again).toEqual({ repositoryId: first.repositoryId, created: false });
    expect(await countRows(t, "repositories")).toBe(1);
    const entry = await t.query(internal.repositories.get, {
      url: "https://github.com/acme/app.git",
    });
    expect(entry).toMatchObject({
      url: "https://github.com/acme/app.git",
      checks: ["new"],
      createdAt: NOW,
      updatedAt: NOW + 5000,
    });
    expect(entry?.baseBranch).toBeUndefined();
  });

  test("refused: bad URLs, checks, branches, limits and webhooks; nothing written", async () => {
    const t = newTest();
    const url = "https://github.com/acme/app.git";
    for (const args of [
      { url: "relative/x" },
      { url: "ext::sh -c id" },
      { url: "http://github.com/acme/app.git" },
      { url: "https://tok@github.com/acme/app.git" },
      { url, checks: [""] },
      { url, checks: ["a\u0000b"] },
      { url, checks: Array.from({ length: MAX_CHECKS + 1 }, (_, i) => `c${i}`) },
      { url, baseBranch: "a..b" },
      { url, maxConcurrentRuns: 0 },
      { url, maxTokens: 1.5 },
      { url, webhookUrl: "ftp://x" },
      { url, webhookUrl: "https://user:pw@hooks.example" },
    ]) {
      await expectConvexError(t.mutation(internal.repositories.add, args), "INVALID_ARGUMENT");
    }
    expect(await countRows(t, "repositories")).toBe(0);
  });
});

describe("repositories:list, get and remove", () => {
  test("list by URL; get either spelling or null; remove once", async () => {
    const t = newTest();
    for (const url of ["https://github.com/b/b.git", "/srv/a.git", "git@github.com:c/c.git"]) {
      await t.mutation(internal.repositories.add, { url });
    }
    expect((await t.query(internal.repositories.list, {})).map((r) => r.url)).toEqual([
      "/srv/a.git",
      "git@github.com:c/c.git",
      "https://github.com/b/b.git",
    ]);
    expect((await t.query(internal.repositories.get, { url: "https://github.com/b/b" }))?.url).toBe(
      "https://github.com/b/b.git",
    );
    expect(await t.query(internal.repositories.get, { url: "https://github.com/x/y" })).toBeNull();
    expect(await t.mutation(internal.repositories.remove, { url: "/srv/a.git/" })).toEqual({
      removed: true,
    });
    expect(await t.mutation(internal.repositories.remove, { url: "/srv/a.git" })).toEqual({
      removed: false,
    });
    expect(await countRows(t, "repositories")).toBe(2);
    await expectConvexError(
      t.query(internal.repositories.get, { url: "not a url" }),
      "INVALID_ARGUMENT",
    );
  });
});
