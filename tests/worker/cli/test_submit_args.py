"""``jangar submit``'s arguments, checked before anything is sent (worker.cli.submit).

The same rules Convex applies in ``workOrders:submitAsOperator`` (and the worker after it): a
bad argument is named, and nothing is written. NUL characters cannot travel in argv, so the
rules that concern them are tested here, on ``check_request`` itself.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from activities.contract import MAX_CHECKS, MAX_PROMPT_CHARS
from worker.cli.submit import BadArgument, SubmitRequest, check_request

GOOD = SubmitRequest(repo="/srv/git/app.git", prompt="Add a NOTES.md", checks=["pytest -q"])


def test_a_good_request_passes_unchanged() -> None:
    assert check_request(GOOD) is GOOD
    assert GOOD.summary == "Add a NOTES.md"
    long = replace(GOOD, prompt="x" * 200 + "\nmore")
    assert long.summary == "x" * 80


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"repo": "relative/x"}, "--repo"),
        ({"repo": "ext::sh -c id"}, "--repo"),
        ({"repo": "https://github.com/a/b?token=x"}, "--repo"),
        ({"prompt": "a\x00b"}, "--prompt"),
        ({"prompt": " \n"}, "--prompt"),
        ({"prompt": "p" * (MAX_PROMPT_CHARS + 1)}, "--prompt"),
        ({"prompt": "é" * 140_000}, "--prompt"),  # under the characters, over the bytes
        ({"branch": "a..b"}, "--branch"),
        ({"base": "HEAD"}, "--base"),
        ({"base": "main", "branch": "main"}, "--branch"),
        ({"title": "t\x00"}, "--title"),
        ({"user": " "}, "--user"),
        ({"checks": ["ok", "a\x00b"]}, "--check 2"),
        ({"checks": [""]}, "--check 1"),
        ({"checks": ["c"] * (MAX_CHECKS + 1)}, "--check"),
    ],
)
def test_each_bad_argument_is_named(change: dict[str, object], named: str) -> None:
    with pytest.raises(BadArgument) as refused:
        check_request(replace(GOOD, **change))  # type: ignore[arg-type]
    assert str(refused.value).startswith(named)
