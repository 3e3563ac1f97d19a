"""The shared contract: the generated TypeScript and Python match convex/lib/contract.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tools.contract as generator
from activities import contract
from tools.contract import SOURCE, main


def test_generated_files_are_up_to_date() -> None:
    # Fails after an edit of contract.json without `make codegen`, or a hand edit of either
    # generated file: the two languages would then disagree on a limit or an enum.
    assert main(["--check"]) == 0


def test_python_constants_are_the_json_values() -> None:
    source = json.loads(SOURCE.read_text())
    assert tuple(source["enums"]["workStatus"]) == contract.WORK_STATUSES
    assert tuple(source["enums"]["errorCode"]) == contract.ERROR_CODES
    assert source["limits"]["promptChars"]["value"] == contract.MAX_PROMPT_CHARS
    assert source["limits"]["checks"]["value"] == contract.MAX_CHECKS


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "contract.py"
    stale.write_text(generator.PY_OUT.read_text().replace("= 256", "= 255", 1))
    monkeypatch.setattr(generator, "PY_OUT", stale)
    assert generator.main(["--check"]) == 1
    assert "= 255" in stale.read_text()  # --check writes nothing
