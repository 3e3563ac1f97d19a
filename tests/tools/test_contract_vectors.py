"""The Python side of convex/lib/contract.vectors.json: what a job accepts and refuses.

convex/lib.test.ts runs the same file against convex/lib/jobRules.ts, so an order Convex accepts
is one the worker accepts too (and the other way round): no order can be created that the
workflow would then refuse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from activities.models import check_branch_name
from activities.repo_url import classify_repo
from tests.activities.conftest import job_spec

REPO = "https://github.com/octo/widgets.git"

VECTORS_FILE = Path(__file__).resolve().parents[2] / "convex" / "lib" / "contract.vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text())


def text(entry: str | dict[str, Any]) -> str:
    """A vector's text: a string, or ``{"repeat", "times", "prefix"?, "suffix"?}``."""
    if isinstance(entry, str):
        return entry
    repeated = str(entry["repeat"]) * int(entry["times"])
    return str(entry.get("prefix", "")) + repeated + str(entry.get("suffix", ""))


def label(entry: str | dict[str, Any]) -> str:
    value = text(entry)
    return repr(value if len(value) <= 40 else f"{value[:20]}...({len(value)} chars)")


def cases(group: str, kind: str) -> list[Any]:
    entries = VECTORS[group][kind]
    return [
        pytest.param(e, id=label(e if isinstance(e, str) or "repeat" in e else e["repo"]))
        for e in entries
    ]


@pytest.mark.parametrize("entry", cases("branchNames", "valid"))
def test_valid_branch_names(entry: str | dict[str, Any]) -> None:
    assert check_branch_name(text(entry)) == text(entry)


@pytest.mark.parametrize("entry", cases("branchNames", "invalid"))
def test_invalid_branch_names(entry: str | dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        check_branch_name(text(entry))


@pytest.mark.parametrize("entry", cases("repos", "valid"))
def test_valid_repos(entry: dict[str, str]) -> None:
    assert classify_repo(entry["repo"]) == entry["kind"]


@pytest.mark.parametrize("entry", cases("repos", "invalid"))
def test_invalid_repos(entry: str | dict[str, Any]) -> None:
    repo = text(entry)
    with pytest.raises(ValueError) as refused:
        classify_repo(repo)
    if "secret" in repo or "hunter2" in repo:
        assert "secret" not in str(refused.value) and "hunter2" not in str(refused.value)


@pytest.mark.parametrize("entry", cases("prompts", "valid"))
def test_valid_prompts(entry: str | dict[str, Any]) -> None:
    job_spec("wo1", REPO, prompt=text(entry))


@pytest.mark.parametrize("entry", cases("prompts", "invalid"))
def test_invalid_prompts(entry: str | dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        job_spec("wo1", REPO, prompt=text(entry))


@pytest.mark.parametrize("entry", cases("checks", "valid"))
def test_valid_checks(entry: str | dict[str, Any]) -> None:
    job_spec("wo1", REPO, checks=(text(entry),))


@pytest.mark.parametrize("entry", cases("checks", "invalid"))
def test_invalid_checks(entry: str | dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        job_spec("wo1", REPO, checks=(text(entry),))
