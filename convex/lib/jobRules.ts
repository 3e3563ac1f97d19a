/**
 * The rules a job's inputs must meet, checked when a work order is created, so that no order
 * Convex accepts can be refused later by the worker (where it would fail or wait instead).
 *
 * Each rule mirrors a Python validator the workflow and its activities run:
 * - branch names: `check_branch_name` in activities/models.py (`git check-ref-format --branch`);
 * - repository locations: `classify_repo` in activities/repo_url.py;
 * - prompts and check commands: `RunAgentInput.prompt` and `RunCheckInput.command` (non-blank,
 *   no NUL, bounded).
 * The limits come from convex/lib/contract.json, and convex/lib/contract.vectors.json holds
 * examples both sides are tested against (lib.test.ts here, tests/tools/test_contract_vectors.py
 * there), so the two implementations cannot drift apart unnoticed.
 *
 * Lengths are counted in Unicode code points, as Python's `len` counts them (a JavaScript
 * string's `.length` counts UTF-16 units, which would make an emoji count twice).
 */
import {
  MAX_BRANCH_LENGTH,
  MAX_CHECKS,
  MAX_PROMPT_CHARS,
  MAX_TEXT_LENGTH,
  MAX_URL_LENGTH,
} from "./contract";
import { fail } from "./errors";

export type RepoKind = "https" | "ssh" | "file" | "local";

/** Characters in `value` as Python counts them (code points). */
export function codePoints(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

const BRANCH_BAD_CHARS = " ~^:?*[\\";

/**
 * The characters Python's `str.isspace()` (and so `str.strip()`) treats as whitespace. JavaScript's
 * `\s` differs (it lacks U+001C-U+001F and U+0085, and has U+FEFF), so it is spelled out.
 */
const PY_SPACE =
  "\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
const BLANK = new RegExp(`^[${PY_SPACE}]*$`, "u");
/** Whitespace or a control character: never part of a repository location. */
const SPACE_OR_CONTROL = new RegExp(`[${PY_SPACE}\u0000-\u001f\u007f-\u009f\ufeff]`, "u");

/**
 * Why `name` is not a valid branch name (empty: it is valid). The same rules and the same
 * order as `check_branch_name`.
 */
export function branchNameProblems(name: string): string[] {
  if (name.length === 0) return ["is empty"];
  const problems: string[] = [];
  if (codePoints(name) > MAX_BRANCH_LENGTH) {
    problems.push(`is longer than ${MAX_BRANCH_LENGTH} characters`);
  }
  if (name.startsWith("-")) problems.push("starts with '-'");
  if (name === "@" || name === "HEAD") problems.push(`is '${name}', which git reserves`);
  if (name.startsWith("/") || name.endsWith("/")) problems.push("starts or ends with '/'");
  if (name.endsWith(".")) problems.push("ends with '.'");
  for (const bad of ["..", "@{", "//"]) {
    if (name.includes(bad)) problems.push(`contains '${bad}'`);
  }
  const badChars = new Set<string>();
  for (const ch of name) {
    const code = ch.codePointAt(0) as number;
    if (BRANCH_BAD_CHARS.includes(ch) || code < 32 || code === 127) badChars.add(ch);
  }
  if (badChars.size > 0) problems.push(`contains ${JSON.stringify([...badChars].sort().join(""))}`);
  for (const part of name.split("/")) {
    if (part.startsWith("."))
      problems.push(`has a component starting with '.' (${JSON.stringify(part)})`);
    if (part.endsWith(".lock")) {
      problems.push(`has a component ending with '.lock' (${JSON.stringify(part)})`);
    }
  }
  return problems;
}

/** A valid git branch name, else INVALID_ARGUMENT naming `field` and every problem. */
export function requireBranchName(field: string, name: string): string {
  const problems = branchNameProblems(name);
  if (problems.length > 0) {
    fail(
      "INVALID_ARGUMENT",
      `${field} ${JSON.stringify(name.slice(0, 80))} is not a valid git branch name: it ` +
        `${problems.join("; it ")} (the rules of \`git check-ref-format --branch\`).`,
    );
  }
  return name;
}

export function optionalBranchName(field: string, name: string | undefined): string | undefined {
  return name === undefined ? undefined : requireBranchName(field, name);
}

// --- Repository locations ----------------------------------------------------------------------

const FORMS =
  "an https:// URL, an ssh:// or user@host:path address, a file:// URL or an absolute local path";
const URL_FORM =
  /^(?<scheme>[A-Za-z][A-Za-z0-9+.-]*):\/\/(?<authority>[^/?#]*)(?<path>[^?#]*)(?<rest>[?#].*)?$/s;
const SCP_LIKE = /^(?:(?<user>[^@/:]+)@)?(?<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?<path>.+)$/s;
const TRANSPORT_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*::/;
const HOST_PORT =
  /^(?<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(?<port>[0-9]{1,5}))?$/;
const SSH_SCHEMES = ["ssh", "git+ssh", "ssh+git"];

/** Why `repo` is refused (null: it is accepted), and its kind when accepted. The message never
 * repeats the value: it may carry a credential. */
export function checkRepo(repo: string): { kind: RepoKind } | { problem: string } {
  const refuse = (problem: string) => ({ problem });
  if (repo.length === 0 || SPACE_OR_CONTROL.test(repo)) {
    return refuse(`repo must be ${FORMS}, without spaces or control characters`);
  }
  if (codePoints(repo) > MAX_URL_LENGTH) {
    return refuse(`repo is longer than ${MAX_URL_LENGTH} characters`);
  }
  if (repo.startsWith("-")) {
    return refuse("repo must not start with '-' (it would be read as a git option)");
  }
  if (TRANSPORT_PREFIX.test(repo)) {
    return refuse(
      "repo must not name a git transport ('<transport>::<address>', e.g. ext:: or fd::): " +
        "those run programs; use an https:// or ssh address",
    );
  }
  const dotSegments = (path: string) => path.split("/").some((s) => s === "." || s === "..");
  if (repo.startsWith("/")) {
    if (dotSegments(repo)) return refuse("repo path must not contain '.' or '..' segments");
    return { kind: "local" };
  }
  const url = URL_FORM.exec(repo);
  if (url !== null) {
    const groups = url.groups as Record<string, string | undefined>;
    const scheme = (groups.scheme as string).toLowerCase();
    const authority = groups.authority as string;
    const path = groups.path as string;
    if (groups.rest !== undefined) {
      return refuse(
        "repo URL must not have a query string or fragment (credentials hide there); pass the " +
          "plain URL and give the worker its token through GITHUB_TOKEN",
      );
    }
    if (scheme === "file") {
      if (authority !== "" || !path.startsWith("/")) {
        return refuse("file:// repo URL needs an absolute path and no host: file:///path/to/repo");
      }
      if (dotSegments(path)) return refuse("repo path must not contain '.' or '..' segments");
      return { kind: "file" };
    }
    if (scheme === "http") {
      return refuse(
        "repo URL scheme 'http' is not allowed (git runs over https and ssh only); use https://",
      );
    }
    if (scheme !== "https" && !SSH_SCHEMES.includes(scheme)) {
      return refuse(`repo URL scheme '${scheme}' is not supported; repo must be ${FORMS}`);
    }
    const at = authority.lastIndexOf("@");
    const userinfo = at >= 0 ? authority.slice(0, at) : null;
    const hostPort = at >= 0 ? authority.slice(at + 1) : authority;
    if (userinfo !== null && (scheme === "https" || userinfo.includes(":") || userinfo === "")) {
      return refuse(
        "repo URL must not carry credentials (a user, token or password before '@'); pass the " +
          "plain URL and give the worker its token through GITHUB_TOKEN",
      );
    }
    if (!HOST_PORT.test(hostPort))
      return refuse(`repo URL has no valid host; repo must be ${FORMS}`);
    if (path.replace(/^\/+|\/+$/g, "") === "") {
      return refuse("repo URL has no repository path (e.g. /owner/name.git)");
    }
    if (dotSegments(path)) return refuse("repo path must not contain '.' or '..' as a name");
    return { kind: scheme === "https" ? "https" : "ssh" };
  }
  const scp = SCP_LIKE.exec(repo);
  if (scp !== null) {
    const path = (scp.groups as Record<string, string>).path;
    if (path.startsWith("-")) return refuse("repo path must not start with '-'");
    if (dotSegments(path)) return refuse("repo path must not contain '.' or '..' as a name");
    return { kind: "ssh" };
  }
  return refuse(`repo must be ${FORMS} (relative paths are ambiguous on a worker)`);
}

/** The kind of an accepted repository location, else INVALID_ARGUMENT saying why. */
export function classifyRepo(repo: string): RepoKind {
  const checked = checkRepo(repo);
  if ("problem" in checked) fail("INVALID_ARGUMENT", `${checked.problem}.`);
  return checked.kind;
}

/**
 * The key a repository is registered and looked up under: the scheme and host in lower case,
 * trailing slashes removed. Nothing else changes (a `.git` suffix is part of a local path, and
 * paths are case-sensitive on most hosts). `classifyRepo` must have accepted `repo`.
 */
export function normalizeRepoUrl(repo: string): string {
  const url = URL_FORM.exec(repo);
  if (url !== null) {
    const groups = url.groups as Record<string, string>;
    const authority = groups.authority;
    const at = authority.lastIndexOf("@");
    const user = at >= 0 ? authority.slice(0, at + 1) : "";
    const host = (at >= 0 ? authority.slice(at + 1) : authority).toLowerCase();
    const path = groups.path.replace(/\/+$/, "");
    return `${groups.scheme.toLowerCase()}://${user}${host}${path}`;
  }
  if (repo.startsWith("/")) return repo.length > 1 ? repo.replace(/\/+$/, "") : repo;
  const scp = SCP_LIKE.exec(repo);
  if (scp !== null) {
    const groups = scp.groups as Record<string, string | undefined>;
    const user = groups.user !== undefined ? `${groups.user}@` : "";
    return `${user}${(groups.host as string).toLowerCase()}:${(groups.path as string).replace(/\/+$/, "")}`;
  }
  return repo;
}

/**
 * The other spellings a registered repository may be named by, tried in order: the
 * normalized form, then the same with the `.git` suffix added or removed.
 */
export function repoLookupKeys(repo: string): string[] {
  const normalized = normalizeRepoUrl(repo);
  const other = normalized.endsWith(".git") ? normalized.slice(0, -4) : `${normalized}.git`;
  return other.length > 0 && !other.endsWith("/") ? [normalized, other] : [normalized];
}

// --- Free text the job runs ---------------------------------------------------------------------

/** Why `text` cannot be one of the job's texts (null: it can). */
export function textProblem(text: string, maxChars: number): string | null {
  if (BLANK.test(text)) return "is blank";
  if (text.includes("\u0000")) return "contains a NUL character";
  const length = codePoints(text);
  if (length > maxChars) return `is ${length} characters; the limit is ${maxChars}`;
  return null;
}

function requireJobText(field: string, text: string, maxChars: number): string {
  const problem = textProblem(text, maxChars);
  if (problem !== null) fail("INVALID_ARGUMENT", `${field} ${problem}.`);
  return text;
}

/** The agent's prompt: non-blank, no NUL, at most MAX_PROMPT_CHARS characters. */
export function requirePrompt(field: string, prompt: string): string {
  return requireJobText(field, prompt, MAX_PROMPT_CHARS);
}

/** A summary (the job's title comes from its first line): non-blank, no NUL, bounded. */
export function requireSummary(summary: string): string {
  return requireJobText("summary", summary, MAX_TEXT_LENGTH);
}

/** Check commands: at most MAX_CHECKS, each non-blank, no NUL, at most MAX_TEXT_LENGTH. */
export function requireChecks(checks: string[] | undefined): string[] | undefined {
  if (checks === undefined) return undefined;
  if (checks.length > MAX_CHECKS) {
    fail(
      "INVALID_ARGUMENT",
      `checks has ${checks.length} entries; the limit is ${MAX_CHECKS}. Pass fewer checks.`,
    );
  }
  return checks.map((check, i) => requireJobText(`checks[${i}]`, check, MAX_TEXT_LENGTH));
}

/** The work branch and the base branch must differ (the job branches off the base). */
export function requireDistinctBranches(
  branchHint: string | undefined,
  baseBranch: string | undefined,
): void {
  if (branchHint !== undefined && branchHint === baseBranch) {
    fail(
      "INVALID_ARGUMENT",
      `branchHint ${JSON.stringify(branchHint)} is also the base branch; the job commits on its ` +
        "own branch, so pass a different branchHint (or none: codex/<work order id>).",
    );
  }
}
