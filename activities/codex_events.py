"""Turning the Codex CLI's ``exec --json`` output into a bounded list of progress summaries.

``codex exec --json`` prints one JSON object per line (JSONL); its ``type`` is one of
``thread.started`` (``thread_id``), ``turn.started``, ``turn.completed`` (``usage``:
``input_tokens``, ``cached_input_tokens``, ``output_tokens``), ``turn.failed`` (``error.message``),
``item.started`` / ``item.updated`` / ``item.completed`` (``item``: ``id``, ``type`` and
type-specific fields) and ``error`` (``message``). Item types include ``agent_message``
(``text``), ``reasoning`` (``text``), ``command_execution`` (``command``, ``exit_code``,
``status``), ``file_change`` (``changes``: ``[{path, kind}]``, ``status``), ``mcp_tool_call``
(``server``, ``tool``, ``status``), ``web_search`` (``query``), ``todo_list`` (``items``) and
``error`` (``message``). (Source: codex-rs/exec/src/exec_events.rs in openai/codex.)

Summaries are made for the events a person following the job cares about: thread and turn
boundaries, failures, and *completed* items; ``item.started``/``item.updated`` only move the
heartbeat. Lines that are not JSON objects (progress bars, warnings) are counted and ignored,
so a non-``--json`` agent still works, just without summaries. Unknown types and fields are
tolerated: the schema grows.
"""

from __future__ import annotations

import json
from typing import Any

from activities.models import AgentProgress, AgentUsage

SUMMARY_CHARS = 300
FINAL_MESSAGE_CHARS = 4000


def _one_line(text: object, limit: int = SUMMARY_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _error_message(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if event.get("message"):
        return str(event["message"])
    return "no message"


def _item_summary(item: dict[str, Any]) -> str | None:
    kind = item.get("type")
    if kind == "agent_message":
        return f"message: {item.get('text', '')}"
    if kind == "reasoning":
        return f"reasoning: {item.get('text', '')}"
    if kind == "command_execution":
        exit_code = item.get("exit_code")
        status = item.get("status", "")
        suffix = f" (exit {exit_code})" if exit_code is not None else f" ({status})"
        return f"ran `{item.get('command', '')}`{suffix}"
    if kind == "file_change":
        changes = _list(item.get("changes"))
        names = [
            f"{c.get('kind', 'update')} {c.get('path', '?')}"
            for c in changes[:5]
            if isinstance(c, dict)
        ]
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        status = item.get("status", "")
        return f"file changes ({status}): {', '.join(names) or 'none'}{more}"
    if kind == "mcp_tool_call":
        return f"tool {item.get('server', '?')}.{item.get('tool', '?')} ({item.get('status', '')})"
    if kind == "web_search":
        return f"web search: {item.get('query', '')}"
    if kind == "todo_list":
        todos = _list(item.get("items"))
        done = sum(1 for t in todos if isinstance(t, dict) and t.get("completed"))
        return f"to-do list: {done}/{len(todos)} done"
    if kind == "error":
        return f"error: {item.get('message', '')}"
    if kind is None:
        return None
    return f"{kind}"


def _progress(seq: int, type_: str, summary: str, item_type: str | None = None) -> AgentProgress:
    return AgentProgress(seq=seq, type=type_, item_type=item_type, summary=_one_line(summary))


class ProgressCollector:
    """Feeds on output lines; keeps counters, the usage and the final message, and hands each
    new progress summary back to the caller (who sends it to Convex live)."""

    def __init__(self) -> None:
        self.lines = 0
        self.json_events = 0
        self.thread_id: str | None = None
        self.final_message: str | None = None
        self.failure: str | None = None  # the last turn.failed / error message
        self._usage = [0, 0, 0]
        self._turns_completed = 0

    def feed(self, line: str) -> AgentProgress | None:
        """One line of the agent's stdout; the progress summary it makes, if any."""
        self.lines += 1
        stripped = line.strip()
        if not stripped.startswith("{"):
            return None
        try:
            event = json.loads(stripped)
        except ValueError:
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return None
        seq = self.json_events
        self.json_events += 1
        return self._handle(seq, event)

    def note_line(self) -> None:
        """A stderr line: counted, never parsed."""
        self.lines += 1

    def _handle(self, seq: int, event: dict[str, Any]) -> AgentProgress | None:
        type_ = str(event["type"])
        if type_ == "thread.started":
            self.thread_id = str(event.get("thread_id") or "") or None
            return _progress(seq, type_, f"thread started {self.thread_id or ''}".strip())
        elif type_ == "turn.started":
            return _progress(seq, type_, "turn started")
        elif type_ == "turn.completed":
            usage = _dict(event.get("usage"))
            tokens = [
                _int(usage.get(key))
                for key in ("input_tokens", "cached_input_tokens", "output_tokens")
            ]
            self._usage = [a + b for a, b in zip(self._usage, tokens, strict=True)]
            self._turns_completed += 1
            return _progress(seq, type_, f"turn completed: {tokens[0]} tokens in, {tokens[2]} out")
        elif type_ in ("turn.failed", "error"):
            self.failure = _one_line(_error_message(event), 1000)
            return _progress(seq, type_, f"{type_}: {self.failure}")
        elif type_ == "item.completed":
            item = _dict(event.get("item"))
            if not item:
                return None
            summary = _item_summary(item)
            item_type = str(item["type"]) if item.get("type") is not None else None
            if item_type == "agent_message" and isinstance(item.get("text"), str):
                text = item["text"].strip()
                self.final_message = text[:FINAL_MESSAGE_CHARS] if text else self.final_message
            if summary is not None:
                return _progress(seq, type_, summary, item_type)
        return None

    @property
    def usage(self) -> AgentUsage | None:
        if not self._turns_completed:
            return None
        return AgentUsage(
            input_tokens=self._usage[0],
            cached_input_tokens=self._usage[1],
            output_tokens=self._usage[2],
        )
