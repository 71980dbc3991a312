"""RESEARCH_JOURNAL.md: add a dated entry on top of the root checkout's journal, under a lock, atomically."""

from __future__ import annotations

import fcntl
import os
import re
from datetime import datetime
from pathlib import Path

from lab import files, journal_format, ledger, slugs
from lab.guard import rules

MAX_TITLE = 120
FORMAT = "**Observation:** numbers with their run_ids, then **Inference:** what you conclude and how sure you are"
# eval.py's generated ids (UTC %Y%m%d-%H%M%S- + 4 hex), as whole tokens; any ledger id can be cited as run:ID.
RUN_ID = re.compile(r"(?<![\w.-])\d{8}-\d{6}-[0-9a-f]{4}(?![\w-])")
# Lazy, so a sentence's closing '.' is not taken as part of the id.
RUN_REF = re.compile(r"(?<![\w-])run:([A-Za-z0-9][A-Za-z0-9._-]*?)(?=\.?(?:[^A-Za-z0-9._-]|$))", re.MULTILINE)
OBSERVATION = re.compile(r"^(\*\*Observation:\*\*|Observation:)", re.MULTILINE)
INFERENCE = re.compile(r"^(\*\*Inference:\*\*|Inference:)", re.MULTILINE)


class JournalError(ValueError):
    """An entry that cannot be added; the message names the value or file and the fix."""


def citations(body: str) -> list[str]:
    """Run ids cited in `body` (generated-id tokens and run:ID), in order, without repeats."""
    found = [m[0] for m in RUN_ID.finditer(body)] + [m[1] for m in RUN_REF.finditer(body)]
    return list(dict.fromkeys(found))


def check_title(title: str) -> str:
    """The stripped title, or JournalError if it is empty, multi-line, too long or holds control characters."""
    try:
        return slugs.check_title(title, MAX_TITLE, "warmup-100: no improvement at 3 seeds", "put the rest in the body")
    except slugs.TitleError as e:
        raise JournalError(str(e)) from None


def check_body(body: str, root: Path) -> str:
    """The stripped body, or JournalError if a part is missing, a line fakes a heading or a cited run is unknown."""
    body = body.strip("\n").rstrip()
    if not body.strip():
        raise JournalError(f"the body is empty: write it as {FORMAT}")
    missing = [name for name, pat in (("Observation", OBSERVATION), ("Inference", INFERENCE)) if not pat.search(body)]
    if missing:
        raise JournalError(f"the body has no {' and no '.join(missing)} part (a line starting with "
                           f"{' / '.join(f'**{m}:**' for m in missing)}): write it as {FORMAT}")
    if m := journal_format.HEADING.search(body.encode()):
        raise JournalError(f"body line {m[0].decode(errors='replace')!r} looks like an entry heading "
                           "(## YYYY-MM-DD HH:MM): drop the '## ' or indent it")
    cited = citations(body)
    if cited:
        results = root / ledger.FILENAME
        if not results.exists():
            raise JournalError(f"{results} does not exist, so cited run(s) {', '.join(cited)} cannot be checked")
        rows, problems = ledger.read(results)
        unknown = [c for c in cited if c not in {r["run_id"] for r in rows}]
        if unknown:
            hint = f"; {results} also has {len(problems)} bad line(s): see `lab ledger check`" if problems else ""
            raise JournalError(f"cited run id(s) {', '.join(unknown)} not in {results}: cite run_ids from "
                               f"`lab ledger show`{hint}")
    return body


def add(root: Path, title: str, body: str, now: datetime | None = None) -> str:
    """Insert a dated entry at the top of root/RESEARCH_JOURNAL.md; return the entry's text."""
    title, body = check_title(title), check_body(body, Path(root))
    path = Path(root) / journal_format.RESEARCH
    while True:
        try:
            f = open(path, "r+b")
        except FileNotFoundError:
            raise JournalError(f"{path} does not exist: restore it with `git checkout -- {journal_format.RESEARCH}` "
                               f"in {root}") from None
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)
            # A writer we waited for replaced the file (os.replace): our lock is on the old inode; retry.
            if os.fstat(f.fileno()).st_ino != _inode(path):
                continue
            old = f.read()
            # The time is taken under the lock so entries written concurrently stay in date order.
            when = now or datetime.now()
            if when.tzinfo:  # headings are the box's local time
                when = when.astimezone().replace(tzinfo=None)
            when = when.replace(second=0, microsecond=0)
            entry, new = _insert(old, path, title, body, when)
            if problem := rules.journal_problem(old, new):
                raise JournalError(f"{path}: the new text would break the journal rule: {problem}")
            files.replace(path, new)
            return entry


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _insert(old: bytes, path: Path, title: str, body: str, when: datetime) -> tuple[str, bytes]:
    """The entry and the journal with it inserted right above the first dated entry."""
    preamble, entries = journal_format.parse(old)
    newest = max((e.when for e in entries if e.when), default=None)
    if newest and when < newest:
        raise JournalError(f"the clock says {when:{journal_format.STAMP}}, before the newest entry of {path} "
                           f"({newest:{journal_format.STAMP}}): fix the box's clock (`date`), entries go newest first")
    if not entries and preamble and not preamble.endswith(b"\n"):
        raise JournalError(f"{path} does not end with a newline, so no entry can go below its preamble "
                           "without changing it: ask the human to add one")
    entry = f"{journal_format.heading(when, title)}\n\n{body}\n"
    gap = b"\n" if entries else b""  # a blank line between the new entry and the next one
    return entry, preamble + entry.encode() + gap + old[len(preamble):]
