"""The journals' format, defined once: a preamble, then dated `## YYYY-MM-DD HH:MM — title` entries, newest first.

The guard (the append-only rule, META_MODE), the loop (`lab journal add`, STOP / PAUSE) and the hooks all read
journals, so this lives at the top level and imports the standard library only.
"""

from __future__ import annotations

import itertools
import re
from collections import namedtuple
from datetime import datetime

RESEARCH = "RESEARCH_JOURNAL.md"  # the agent's journal: observations and inferences, for the human
HUMAN = "human_journal.md"  # the human's: META_MODE=1, STOP and PAUSE directives
META = "meta_journal.md"  # why each META_MODE change to a frozen file was made
DAY = "%Y-%m-%d"  # the local date that names idea and report files and baseline tags
STAMP = f"{DAY} %H:%M"  # the box's local time, to the minute: journal headings, ideas' `created`, critiques, deadlines
# Only a line that starts with "## " and a date opens an entry; indented examples or "YYYY-MM-DD" don't.
HEADING = re.compile(rb"^## (\d{4}-\d{2}-\d{2} \d{2}:\d{2})[^\n]*", re.MULTILINE)

# heading: the heading line; when: its datetime, or None if it is not a real date; text: heading and body.
Entry = namedtuple("Entry", "heading when text")


def parse(data: bytes) -> tuple[bytes, list[Entry]]:
    """Split a journal into its preamble and its dated entries, in file order (newest first)."""
    starts = [m.start() for m in HEADING.finditer(data)] + [len(data)]
    return data[:starts[0]], [_entry(data[a:b]) for a, b in itertools.pairwise(starts)]


def _entry(text: bytes) -> Entry:
    m = HEADING.match(text)
    assert m is not None  # parse cuts at heading starts only
    try:
        when = datetime.fromisoformat(m[1].decode())  # HEADING fixed its shape (STAMP's); strptime's first call costs ~9 ms
    except ValueError:
        when = None
    return Entry(m[0].decode(errors="replace").rstrip("\r"), when, text)


def heading(when: datetime, title: str) -> str:
    """A new entry's heading line (without its newline)."""
    return f"## {when:{STAMP}} — {title}"
