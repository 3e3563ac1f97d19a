"""Generate the shared contract's code: ``python -m tools.contract`` (``make codegen``).

``convex/lib/contract.json`` holds the limits and enums both sides enforce. This writes
``convex/lib/contract.ts`` (constants ``as const`` and the union types) and
``activities/contract.py`` (``Final`` constants and ``Literal`` types), so neither side restates
a number or a status by hand. ``--check`` writes nothing and exits 1 when a generated file
differs from what the JSON gives; the test suite runs it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "convex" / "lib" / "contract.json"
TS_OUT = ROOT / "convex" / "lib" / "contract.ts"
PY_OUT = ROOT / "activities" / "contract.py"
HEADER = "Generated from convex/lib/contract.json (tools/contract.py, `make codegen`); do not edit."


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _plural(name: str) -> str:
    """``workStatus`` -> ``WORK_STATUSES``, ``stepKind`` -> ``STEP_KINDS``."""
    upper = _upper_snake(name)
    return upper + ("ES" if upper.endswith("S") else "S")


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SOURCE.read_text())
    return data


def render_ts(contract: dict[str, Any]) -> str:
    lines = [f"/** {HEADER} */", ""]
    for name, values in contract["enums"].items():
        const = _plural(name)
        items = "".join(f"  {json.dumps(v)},\n" for v in values)
        lines.append(f"export const {const} = [\n{items}] as const;")
        lines.append(f"export type {_pascal(name)} = (typeof {const})[number];")
        lines.append("")
    for name, limit in contract["limits"].items():
        lines.append(f"/** {limit['doc']} */")
        lines.append(f"export const MAX_{_upper_snake(name)} = {limit['value']};")
    return "\n".join(lines) + "\n"


def render_py(contract: dict[str, Any]) -> str:
    lines = [f'"""{HEADER}"""', "", "from typing import Final, Literal", ""]
    for name, values in contract["enums"].items():
        const = _plural(name)
        items = "".join(f"    {json.dumps(v)},\n" for v in values)
        lines.append(f"{_pascal(name)} = Literal[\n{items}]")
        lines.append(f"{const}: Final[tuple[{_pascal(name)}, ...]] = (\n{items})")
        lines.append("")
    for name, limit in contract["limits"].items():
        lines.append(f"MAX_{_upper_snake(name)}: Final = {limit['value']}")
        lines.append(f'"""{limit["doc"]}"""')
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    contract = load()
    return {TS_OUT: render_ts(contract), PY_OUT: render_py(contract)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        names = ", ".join(
            str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in stale
        )
        print(f"stale: {names}; run `make codegen`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
