"""The file taxonomy (FROZEN, GLOBAL, APPEND-ONLY, HUMAN-ONLY, REGULAR), read from taxonomy.json."""

from __future__ import annotations

import json
import os
from functools import cache

DECLARATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "taxonomy.json")


@cache
def _declaration() -> dict:
    with open(DECLARATION, encoding="utf-8") as f:
        data = json.load(f)
    known = set(data["classes"])
    for pattern, classes in data["paths"].items():
        unknown = set(classes) - known
        if unknown:
            raise ValueError(f"{DECLARATION}: {pattern!r} names unknown class(es) {sorted(unknown)}")
    return data


def paths() -> dict[str, tuple[str, ...]]:
    """Pattern -> classes, in declaration order."""
    return {pattern: tuple(classes) for pattern, classes in _declaration()["paths"].items()}


def classes_of(path: str) -> tuple[str, ...]:
    """Classes of a repo-relative posix path; an exact entry beats the longest directory prefix."""
    table = _declaration()["paths"]
    if path in table:
        return tuple(table[path])
    dirs = [p for p in table if p.endswith("/") and path.startswith(p)]
    return tuple(table[max(dirs, key=len)]) if dirs else ("REGULAR",)


def is_global(path: str) -> bool:
    return "GLOBAL" in classes_of(path)


def meta_expiry_hours() -> float:
    """Hours a META_MODE=1 entry of human_journal.md stays in force (meta.expiry_hours, default 12)."""
    return float(_declaration().get("meta", {}).get("expiry_hours", 12))


def patterns_of(cls: str) -> list[str]:
    """Declared patterns carrying class `cls`, usable as git pathspecs."""
    return [pattern for pattern, classes in paths().items() if cls in classes]
