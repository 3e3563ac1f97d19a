#!/usr/bin/env python3
"""STAND-IN for the Codex CLI (`codex exec --json --sandbox workspace-write PROMPT`).

It is not Codex.

It exists so the worker can be exercised without the real agent: tests use it, and `make run`
uses it when the Codex CLI is not installed. It accepts Codex-style arguments (``exec``, flags,
the prompt last, optionally after ``--``), edits files in the current directory
deterministically from the prompt, and prints the JSON lines ``codex exec --json`` prints
(``thread.started``, ``turn.started``, ``item.started``/``item.completed`` with
``command_execution``, ``file_change``, ``agent_message`` items, ``turn.completed``; on failure
``turn.failed``). Without ``--json`` it prints plain text.

The edit: append ``- <request>`` to ``NOTES.md`` (created if missing); the request is the prompt,
or for a follow-up (whose prompt carries the conversation so far) its last request. The prompt
comes as the last argument, or on stdin when that argument is ``-``, as with ``codex exec``.

Behaviour switches, from the environment (``CODEX_STANDIN_*``) or, for runs started through a
work order, from directives in the prompt such as ``[standin:exit=3]``:

=============================  ==========================  ==================================
environment                    prompt directive            effect
=============================  ==========================  ==================================
CODEX_STANDIN_EXIT_CODE=N      [standin:exit=N]            print turn.failed, exit N (no edit)
CODEX_STANDIN_SLEEP=S          [standin:sleep=S]           sleep S seconds after turn.started
CODEX_STANDIN_NO_CHANGES=1     [standin:no-changes]        edit nothing
CODEX_STANDIN_NOISE=1          [standin:noise]             non-JSON lines on stdout and stderr
CODEX_STANDIN_EXTRA_EVENTS=N   [standin:events=N]          N extra reasoning items
CODEX_STANDIN_TURNS=N          [standin:turns=N]           N turns, each reporting its usage
CODEX_STANDIN_TURN_SLEEP=S     [standin:turn-sleep=S]      sleep S seconds before each turn
CODEX_STANDIN_HOLD=S           [standin:hold=S]            sleep S seconds after the edit
                                                           (a kill then leaves a dirty tree)
CODEX_STANDIN_IGNORE_SIGTERM=1                             ignore SIGTERM (only SIGKILL stops)
CODEX_STANDIN_PID_FILE=path                                write own pid there
CODEX_STANDIN_CHILD_PID_FILE=                              start a `sleep` child in the same
path                                                       process group, write its pid there
CODEX_STANDIN_ENV_DUMP=path                                write the environment as JSON
                               [standin:attack=A,B]        HOSTILE: try the attacks A, B...
                                                           of tools/standins/attacks.py on
                                                           the worker (all when no value)
=============================  ==========================  ==================================

``[standin:attack]`` turns this stand-in into a hostile agent for the sandbox tests: before its
edit it tries to read the worker's environment, read and write other jobs' workspaces, plant
git configuration the worker's own git would execute, leave processes behind, ``kill -9`` its
parent and the worker, and print 50 MB (``tools/standins/attacks.py`` documents each attempt and
the ``[standin:attack-*=...]`` directives that tell it the worker's pid, a target workspace and
where the planted programs leave their markers). It reports what it observed and still makes
its edit: the job's own work must succeed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

_DIRECTIVE = re.compile(r"\[standin:([a-z-]+)(?:=([^\]]*))?\]")


_VALUED_FLAGS = {"--sandbox", "-s", "--model", "-m", "--cd", "-C", "--profile", "-p"}


def _parse_args(argv: list[str]) -> tuple[bool, str]:
    """(json mode, prompt) from Codex-style arguments; a prompt of ``-`` (or none) is read
    from stdin, as ``codex exec`` does."""
    args = list(argv)
    if args and args[0] == "exec":
        args = args[1:]
    json_mode = "--json" in args or "--experimental-json" in args
    if "--" in args:
        rest = args[args.index("--") + 1 :]
        prompt = " ".join(rest)
    else:
        positional: list[str] = []
        skip = False
        for arg in args:
            if skip:
                skip = False
            elif arg in _VALUED_FLAGS:
                skip = True
            elif arg == "-" or not arg.startswith("-"):
                positional.append(arg)
        prompt = positional[-1] if positional else ""
    if prompt == "-" or not prompt:
        prompt = sys.stdin.read() if not sys.stdin.isatty() else prompt
    return json_mode, prompt


def _request(prompt: str) -> str:
    """The request to act on: a follow-up's prompt carries the conversation before it."""
    marker = "Now the new request:\n"
    return prompt.rsplit(marker, 1)[-1].strip() if marker in prompt else prompt.strip()


def _switches(prompt: str) -> dict[str, str]:
    found = {name: value or "1" for name, value in _DIRECTIVE.findall(prompt)}
    env_names = {
        "exit": "CODEX_STANDIN_EXIT_CODE",
        "sleep": "CODEX_STANDIN_SLEEP",
        "no-changes": "CODEX_STANDIN_NO_CHANGES",
        "noise": "CODEX_STANDIN_NOISE",
        "events": "CODEX_STANDIN_EXTRA_EVENTS",
        "turns": "CODEX_STANDIN_TURNS",
        "turn-sleep": "CODEX_STANDIN_TURN_SLEEP",
        "hold": "CODEX_STANDIN_HOLD",
    }
    for name, env in env_names.items():
        if os.environ.get(env):
            found[name] = os.environ[env]
    return found


class _Out:
    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.counter = 0

    def event(self, event: dict[str, object], text: str) -> None:
        if self.json_mode:
            print(json.dumps(event), flush=True)
        else:
            print(text, flush=True)

    def item(self, phase: str, item: dict[str, object], text: str) -> None:
        self.event({"type": f"item.{phase}", "item": item}, text)

    def next_id(self) -> str:
        self.counter += 1
        return f"item_{self.counter}"


def main(argv: list[str]) -> int:
    json_mode, prompt = _parse_args(argv)
    switches = _switches(prompt)
    prompt = _request(prompt)
    if os.environ.get("CODEX_STANDIN_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("CODEX_STANDIN_PID_FILE"):
        Path(os.environ["CODEX_STANDIN_PID_FILE"]).write_text(str(os.getpid()))
    if os.environ.get("CODEX_STANDIN_ENV_DUMP"):
        Path(os.environ["CODEX_STANDIN_ENV_DUMP"]).write_text(json.dumps(dict(os.environ)))
    if os.environ.get("CODEX_STANDIN_CHILD_PID_FILE"):
        child = subprocess.Popen(["sleep", "300"])
        Path(os.environ["CODEX_STANDIN_CHILD_PID_FILE"]).write_text(str(child.pid))

    out = _Out(json_mode)
    thread_id = hashlib.sha256(prompt.encode()).hexdigest()[:32]
    out.event({"type": "thread.started", "thread_id": thread_id}, f"[stand-in] thread {thread_id}")
    out.event({"type": "turn.started"}, "[stand-in] turn started")
    if "noise" in switches:
        print("stand-in: plain text progress line, not JSON", flush=True)
        print("stand-in: a warning on stderr", file=sys.stderr, flush=True)
        print("{not json either", flush=True)
    if "sleep" in switches:
        time.sleep(float(switches["sleep"]))
    if "attack" in switches:
        # A sibling module: the sandbox shows this directory, not the project (so no `tools.`).
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        attacks = importlib.import_module("attacks")
        attacks.run(attacks.plan_from_directives(switches))
    for n in range(int(switches.get("events", "0") or 0)):
        out.item(
            "completed",
            {"id": out.next_id(), "type": "reasoning", "text": f"thinking step {n + 1}"},
            f"[stand-in] thinking step {n + 1}",
        )

    exit_code = int(switches.get("exit", "0") or 0)
    if exit_code:
        message = f"stand-in agent asked to fail with exit code {exit_code}"
        out.event({"type": "turn.failed", "error": {"message": message}}, message)
        print(message, file=sys.stderr, flush=True)
        return exit_code

    command_id = out.next_id()
    command = {"id": command_id, "type": "command_execution", "command": "ls", "status": ""}
    out.item(
        "started",
        {**command, "aggregated_output": "", "exit_code": None, "status": "in_progress"},
        "[stand-in] running ls",
    )
    listing = "\n".join(sorted(p.name for p in Path.cwd().iterdir() if p.name != ".git"))
    out.item(
        "completed",
        {**command, "aggregated_output": listing, "exit_code": 0, "status": "completed"},
        "[stand-in] ran ls",
    )

    if "no-changes" not in switches:
        notes = Path("NOTES.md")
        kind = "update" if notes.exists() else "add"
        with notes.open("a", encoding="utf-8") as handle:
            handle.write(f"- {prompt}\n")
        out.item(
            "completed",
            {
                "id": out.next_id(),
                "type": "file_change",
                "changes": [{"path": "NOTES.md", "kind": kind}],
                "status": "completed",
            },
            "[stand-in] updated NOTES.md",
        )
        message = f"Added the request to NOTES.md: {prompt[:80]}"
        if "hold" in switches:
            time.sleep(float(switches["hold"]))
    else:
        message = "Nothing to change."
    out.item("completed", {"id": out.next_id(), "type": "agent_message", "text": message}, message)
    usage = {"input_tokens": 100 + len(prompt), "cached_input_tokens": 0, "output_tokens": 42}
    out.event({"type": "turn.completed", "usage": usage}, "[stand-in] turn completed")
    for turn in range(1, int(switches.get("turns", "1") or 1)):
        time.sleep(float(switches.get("turn-sleep", "0") or 0))
        out.event({"type": "turn.started"}, f"[stand-in] turn {turn + 1} started")
        out.event({"type": "turn.completed", "usage": usage}, "[stand-in] turn completed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
