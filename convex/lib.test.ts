/** The shared rules in convex/lib: transition tables, step ordering, guards, the job's rules. */
import { ConvexError } from "convex/values";
import { describe, expect, test } from "vitest";
import vectors from "./lib/contract.vectors.json";
import { fail } from "./lib/errors";
import {
  assertSizeWithin,
  requireCommitSha,
  requireIdempotencyKey,
  requireRepo,
  requireText,
  resolveLimit,
  serializedSize,
} from "./lib/guards";
import {
  STEP_STATUS_RANK,
  TERMINAL_WORK_STATUSES,
  WORK_TRANSITIONS,
  classifyStepTransition,
  classifyWorkTransition,
  isTerminalStepStatus,
} from "./lib/transitions";
import {
  branchNameProblems,
  checkRepo,
  normalizeRepoUrl,
  repoLookupKeys,
  textProblem,
} from "./lib/jobRules";
import { MAX_PROMPT_CHARS, MAX_TEXT_LENGTH, MAX_VALUE_BYTES } from "./lib/contract";
import { STEP_STATUSES, WORK_STATUSES } from "./lib/validators";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConvexError);
    return (error as ConvexError<{ code: string }>).data.code;
  }
  return undefined;
}

describe("work transition table", () => {
  test("matches the contract", () => {
    expect(WORK_TRANSITIONS).toEqual({
      queued: ["running", "failed", "canceled"],
      running: ["succeeded", "failed", "canceled"],
      succeeded: [],
      failed: [],
      canceled: [],
    });
  });

  test("terminal statuses have no way out", () => {
    for (const status of TERMINAL_WORK_STATUSES) expect(WORK_TRANSITIONS[status]).toEqual([]);
  });

  test("every pair is classified by the table", () => {
    for (const from of WORK_STATUSES) {
      for (const to of WORK_STATUSES) {
        const expected =
          from === to ? "same" : WORK_TRANSITIONS[from].includes(to) ? "allowed" : "refused";
        expect(classifyWorkTransition(from, to), `${from} -> ${to}`).toBe(expected);
      }
    }
  });
});

describe("step ordering", () => {
  test("pending < running < terminal", () => {
    expect(STEP_STATUS_RANK.pending).toBeLessThan(STEP_STATUS_RANK.running);
    for (const status of ["succeeded", "failed", "canceled", "skipped"] as const) {
      expect(STEP_STATUS_RANK.running).toBeLessThan(STEP_STATUS_RANK[status]);
      expect(isTerminalStepStatus(status)).toBe(true);
    }
  });

  test("every pair: forward advances, terminal is final, backwards is stale", () => {
    for (const from of STEP_STATUSES) {
      for (const to of STEP_STATUSES) {
        const got = classifyStepTransition(from, to);
        if (isTerminalStepStatus(from)) expect(got, `${from} -> ${to}`).toBe("stale");
        else if (from === to) expect(got).toBe("same");
        else if (STEP_STATUS_RANK[to] > STEP_STATUS_RANK[from]) expect(got).toBe("advance");
        else expect(got, `${from} -> ${to}`).toBe("stale");
      }
    }
    expect(classifyStepTransition("succeeded", "running")).toBe("stale");
    expect(classifyStepTransition("running", "pending")).toBe("stale");
  });
});

describe("guards", () => {
  test("fail throws ConvexError {code, message}", () => {
    expect(() => fail("CONFLICT", "nope")).toThrow(ConvexError);
    try {
      fail("NOT_FOUND", "gone");
    } catch (error) {
      expect((error as ConvexError<{ code: string; message: string }>).data).toEqual({
        code: "NOT_FOUND",
        message: "gone",
      });
    }
  });

  test("size guard: at the limit passes, one byte over is TOO_LARGE with both sizes", () => {
    const overhead = serializedSize("");
    const atLimit = "x".repeat(MAX_VALUE_BYTES - overhead);
    expect(serializedSize(atLimit)).toBe(MAX_VALUE_BYTES);
    expect(() => assertSizeWithin("payload", atLimit)).not.toThrow();
    const over = atLimit + "x";
    expect(codeOf(() => assertSizeWithin("payload", over))).toBe("TOO_LARGE");
    const big = { text: "é".repeat(MAX_VALUE_BYTES) };
    let message = "";
    try {
      assertSizeWithin("payload", big);
    } catch (error) {
      message = (error as ConvexError<{ message: string }>).data.message;
    }
    expect(message).toContain(`payload is ${serializedSize(big)} bytes serialized`);
    expect(message).toContain("the limit is 65536 bytes (64 KiB)");
    expect(() => assertSizeWithin("payload", undefined)).not.toThrow();
  });

  test("strings: blank, too long and whitespace are INVALID_ARGUMENT", () => {
    expect(codeOf(() => requireText("userId", "  ", 10))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => requireText("userId", "x".repeat(11), 10))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => requireText("repo", "a b", 10, { singleToken: true }))).toBe(
      "INVALID_ARGUMENT",
    );
    expect(requireText("repo", "a/b", 10, { singleToken: true })).toBe("a/b");
    expect(codeOf(() => requireIdempotencyKey(""))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => requireIdempotencyKey("k".repeat(513)))).toBe("INVALID_ARGUMENT");
    expect(requireIdempotencyKey("k".repeat(512))).toHaveLength(512);
    expect(codeOf(() => requireCommitSha("not-a-sha"))).toBe("INVALID_ARGUMENT");
    expect(requireCommitSha("0123abc")).toBe("0123abc");
  });

  test("limits: default, bounds, whole numbers only", () => {
    expect(resolveLimit(undefined, 20, 100)).toBe(20);
    expect(resolveLimit(100, 20, 100)).toBe(100);
    for (const bad of [0, -1, 101, 1.5, Number.NaN]) {
      expect(
        codeOf(() => resolveLimit(bad, 20, 100)),
        String(bad),
      ).toBe("INVALID_ARGUMENT");
    }
  });
});

describe("credentials never reach Convex", () => {
  test.each([
    "https://x-access-token:ghp_secret@github.com/acme/app.git",
    "https://ghp_secret@github.com/acme/app.git",
    "ssh://git:hunter2@github.com/acme/app.git",
  ])("%s is refused", (url) => {
    expect(codeOf(() => requireRepo(url))).toBe("INVALID_ARGUMENT");
  });

  test.each([
    "https://github.com/acme/app.git",
    "git@github.com:acme/app.git",
    "ssh://git@github.com/acme/app.git",
    "/srv/repos/app.git",
    "file:///srv/repos/app.git",
  ])("%s is accepted", (url) => {
    expect(requireRepo(url)).toBe(url);
  });
});

// --- convex/lib/contract.vectors.json: the same cases tests/tools/test_contract_vectors.py runs ---

type Text = string | { repeat: string; times: number; prefix?: string; suffix?: string };

function text(entry: Text): string {
  return typeof entry === "string"
    ? entry
    : (entry.prefix ?? "") + entry.repeat.repeat(entry.times) + (entry.suffix ?? "");
}

function label(entry: Text): string {
  const value = text(entry);
  return JSON.stringify(value.length <= 40 ? value : `${value.slice(0, 20)}...(${value.length})`);
}

describe("contract vectors (shared with the Python validators)", () => {
  test.each(vectors.branchNames.valid.map((e) => [label(e), e]))("branch %s is valid", (_, e) => {
    expect(branchNameProblems(text(e as Text))).toEqual([]);
  });
  test.each(vectors.branchNames.invalid.map((e) => [label(e), e]))(
    "branch %s is invalid",
    (_, e) => {
      expect(branchNameProblems(text(e as Text))).not.toEqual([]);
    },
  );
  test.each(vectors.repos.valid.map((e) => [e.repo, e.kind]))("repo %s is %s", (repo, kind) => {
    expect(checkRepo(repo)).toEqual({ kind });
  });
  test.each(vectors.repos.invalid.map((e) => [label(e), e]))("repo %s is refused", (_, e) => {
    const repo = text(e as Text);
    const checked = checkRepo(repo);
    expect(checked).toHaveProperty("problem");
    if (/secret|hunter2/.test(repo)) {
      expect(JSON.stringify(checked)).not.toMatch(/secret|hunter2/);
    }
  });
  test.each(vectors.prompts.valid.map((e) => [label(e), e]))("prompt %s is valid", (_, e) => {
    expect(textProblem(text(e as Text), MAX_PROMPT_CHARS)).toBeNull();
  });
  test.each(vectors.prompts.invalid.map((e) => [label(e), e]))("prompt %s is refused", (_, e) => {
    expect(textProblem(text(e as Text), MAX_PROMPT_CHARS)).not.toBeNull();
  });
  test.each(vectors.checks.valid.map((e) => [label(e), e]))("check %s is valid", (_, e) => {
    expect(textProblem(text(e as Text), MAX_TEXT_LENGTH)).toBeNull();
  });
  test.each(vectors.checks.invalid.map((e) => [label(e), e]))("check %s is refused", (_, e) => {
    expect(textProblem(text(e as Text), MAX_TEXT_LENGTH)).not.toBeNull();
  });
});

describe("repository keys", () => {
  test("normalized: scheme and host lower case, trailing slashes gone, the rest kept", () => {
    expect(normalizeRepoUrl("HTTPS://GitHub.COM/Acme/App.git/")).toBe(
      "https://github.com/Acme/App.git",
    );
    expect(normalizeRepoUrl("ssh://Git@Host.EXAMPLE:22/a/b")).toBe("ssh://Git@host.example:22/a/b");
    expect(normalizeRepoUrl("git@GitHub.com:Acme/App.git")).toBe("git@github.com:Acme/App.git");
    expect(normalizeRepoUrl("/srv/Git/app.git/")).toBe("/srv/Git/app.git");
    expect(normalizeRepoUrl("file:///srv/app.git")).toBe("file:///srv/app.git");
  });

  test("looked up under both .git spellings", () => {
    expect(repoLookupKeys("https://github.com/a/b")).toEqual([
      "https://github.com/a/b",
      "https://github.com/a/b.git",
    ]);
    expect(repoLookupKeys("https://github.com/a/b.git/")).toEqual([
      "https://github.com/a/b.git",
      "https://github.com/a/b",
    ]);
  });
});
