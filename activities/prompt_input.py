"""How a prompt reaches the agent: on stdin, from a file in the job's private directory,
never on argv.

Two reasons. Linux caps one argument at ``MAX_ARG_STRLEN`` (32 pages, 128 KiB), so a 140 KB
prompt fails with ``Argument list too long`` (E2BIG) before the agent starts; and argv is
readable by every local user (``/proc/<pid>/cmdline``, ``ps``), while a file of mode 0600 in
the job's private directory and a pipe are not.

The real Codex CLI reads the prompt from stdin when the prompt argument is ``-``
(``codex exec --json -``): in openai/codex ``codex-rs/exec/src/cli.rs`` the ``PROMPT``
positional is documented "If not provided as an argument (or if `-` is used), instructions are
read from stdin", and ``codex-rs/exec/src/lib.rs`` resolves ``Some("-")`` to
``StdinPromptBehavior::Forced``: it reads stdin to EOF, requires UTF-8 (or a UTF-16 BOM) and
exits 1 with "No prompt provided via stdin." when it is blank. Without ``-``, a prompt
argument plus a piped stdin makes Codex append stdin to the prompt as a ``<stdin>`` block, so
the agent's stdin must be the prompt file or /dev/null, never something else. The stand-in
(``tools/standins/codex_standin.py``) reads stdin for ``-`` too.

Usage (what ``run_agent`` should do)::

    path = write_prompt_file(private_dir, inp.prompt)
    await run_process(stdin_prompt_argv(settings.codex_command), ..., stdin=path)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROMPT_FILE_NAME = "prompt.txt"
STDIN_PROMPT_ARG = "-"  # Codex: "read the prompt from stdin"


def stdin_prompt_argv(command: Sequence[str]) -> list[str]:
    """The agent's command line when the prompt comes on stdin: the command, then ``-``."""
    if not command:
        raise ValueError("the agent command must not be empty")
    return [*command, STDIN_PROMPT_ARG]


def write_prompt_file(directory: Path, prompt: str, name: str = PROMPT_FILE_NAME) -> Path:
    """Write ``prompt`` (UTF-8) to ``directory/name``, readable by the worker's user only.

    ``directory`` is the job's private directory (outside the workspace, so the prompt is not
    committed, and under the hidden data directory, so no other job's sandbox can read it). The
    write is atomic: a retried activity never hands the agent half a prompt.
    """
    if os.sep in name or name in ("", ".", ".."):
        raise ValueError(f"prompt file name must be a plain file name; got {name!r}")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, scratch = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
            handle.write(prompt.encode("utf-8"))
        target = directory / name
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return target
