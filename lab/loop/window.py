"""The overnight window as the hooks see it: is a night open, and what do the human's new directives say.

`lab overnight` writes `.cache/overnight/window.json` when a night starts and marks it stopped when a
stop rule fires. The SessionStart/Stop hooks (lab/loop/session_hook.py) read it on every stop: stdlib only.
Directives are lines of a human_journal.md entry added after the night started: `STOP` (optionally
followed by a reason) ends the night; `PAUSE until HH:MM` (or `YYYY-MM-DD HH:MM`) holds it until then.
"""

from __future__ import annotations

import json
import os
import re
from collections import namedtuple
from datetime import datetime, timedelta

from lab import journal_format

DIR = os.path.join(".cache", "overnight")
WINDOW = os.path.join(DIR, "window.json")
TIME = "%Y-%m-%dT%H:%M:%S"  # local time, as the journals' headings are
STOP_LINE = re.compile(r"^STOP\b[:\s]*(.*)$")
PAUSE_LINE = re.compile(r"^PAUSE\b(.*)$")
PAUSE_UNTIL = re.compile(r"^\s+until\s+(?:(\d{4}-\d{2}-\d{2})\s+)?(\d{1,2}):(\d{2})\s*$")

# kind: "stop" | "pause" | None; until: the pause's end (local); why: one line naming the entry and line.
Directive = namedtuple("Directive", "kind until why")


def read(root: str | os.PathLike) -> dict | None:
    """The window record, or None when no night was ever started here (or the record is unreadable)."""
    try:
        with open(os.path.join(root, WINDOW), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_open(record: dict | None, now: datetime | None = None) -> bool:
    """A night is open while its driver lives, its deadline is ahead and no stop rule has fired."""
    if not record or record.get("stopped"):
        return False
    now = now or datetime.now()
    try:
        if now >= datetime.strptime(record["deadline"], TIME):
            return False
        os.kill(int(record["pid"]), 0)
    except (KeyError, ValueError, TypeError, ProcessLookupError, PermissionError):
        return False
    return True


def entry_count(root: str | os.PathLike) -> int:
    """How many dated entries human_journal.md holds now (the night's directives are the ones above them)."""
    return len(_entries(root))


def _entries(root: str | os.PathLike) -> list:
    try:
        with open(os.path.join(root, journal_format.HUMAN), "rb") as f:
            return journal_format.parse(f.read())[1]
    except FileNotFoundError:
        return []


def directive(root: str | os.PathLike, entries_at_start: int, now: datetime | None = None) -> Directive:
    """The newest directive among entries added since the night started; a malformed PAUSE stops the night."""
    now = now or datetime.now()
    entries = _entries(root)
    for entry in entries[:max(0, len(entries) - entries_at_start)]:  # newest first
        stamp = entry.heading.removeprefix("## ")
        for number, line in enumerate(entry.text.decode(errors="replace").splitlines()[1:], start=2):
            line = line.strip()
            if m := STOP_LINE.match(line):
                return Directive("stop", None, f"STOP in the human_journal.md entry '{stamp}'"
                                               + (f": {m[1]}" if m[1] else ""))
            if m := PAUSE_LINE.match(line):
                until = _pause_end(m[1], entry.when or now)
                if until is None:
                    return Directive("stop", None, f"human_journal.md entry '{stamp}', line {number} of the entry: "
                                                   f"{line!r} is not `PAUSE until HH:MM` (or `PAUSE until "
                                                   "YYYY-MM-DD HH:MM`), so the night stops rather than guess")
                if until > now:
                    return Directive("pause", until, f"PAUSE until {until:{journal_format.STAMP}} in the human_journal.md "
                                                     f"entry '{stamp}'")
                return Directive(None, None, "")  # the newest pause is over: carry on
    return Directive(None, None, "")


def _pause_end(rest: str, written: datetime) -> datetime | None:
    """`until HH:MM`: the first such time after the entry was written; `until YYYY-MM-DD HH:MM`: that one."""
    m = PAUSE_UNTIL.match(rest)
    if not m:
        return None
    try:
        if m[1]:
            return datetime.strptime(f"{m[1]} {m[2]}:{m[3]}", journal_format.STAMP)
        end = written.replace(hour=int(m[2]), minute=int(m[3]), second=0, microsecond=0)
    except ValueError:
        return None
    return end if end > written else end + timedelta(days=1)
