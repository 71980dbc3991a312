"""The taxonomy's rules as a pure function of a change set: which changes break which rule, and why.

Runs inside agent hooks on every tool call: stdlib only, no git, no I/O; callers supply the bytes.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from datetime import datetime

from lab import journal_format, ledger, names
from lab.taxonomy import classes_of

UNLOCK = ("To unlock: the human adds a dated entry with a line META_MODE=1 at the top of human_journal.md "
          "(or runs with META_MODE=1 in the environment), and the commit adds a meta_journal.md entry saying why.")


# path: repo-relative posix path ("eval.py", "lab/ledger.py"); old/new: bytes, or None where the file is absent.
Change = namedtuple("Change", "path old new")
# rule: frozen, human-only, global-off-main, append-only, ledger-append-only, meta-journal-missing;
# message: one line naming the rule, the file, what is wrong and what to do instead.
Violation = namedtuple("Violation", "rule path message")
def _stamp(when: datetime) -> str:
    return when.strftime(journal_format.STAMP)


def journal_problem(old: bytes | None, new: bytes | None) -> str | None:
    """Why old -> new is not "new dated entries on top, the rest byte-identical", or None."""
    if new is None:
        return "the journal is deleted"
    if old == new:
        return None
    preamble, entries = journal_format.parse(new)
    if old is None:  # creation: anything goes, as long as every heading has a real date
        bad = next((e for e in entries if e.when is None), None)
        return f"heading '{bad.heading}' has no valid date" if bad else None
    old_preamble, old_entries = journal_format.parse(old)
    if old_entries and new.startswith(old):
        return "new text is not at the top: it was added at the end (new entries go directly below the preamble)"
    if preamble != old_preamble:
        return "preamble changed (the text above the first dated entry)"
    added, texts = len(entries) - len(old_entries), {e.text for e in entries}
    if added < 0:
        gone = next((e for e in old_entries if e.text not in texts), old_entries[-1])
        return f"an earlier entry was deleted: '{gone.heading}' is missing"
    for before, after in zip(old_entries, entries[added:], strict=False):  # old entries must be an exact suffix
        if before.text in texts and before.text != after.text:  # intact but shifted: text went in below it
            return f"new text is not at the top: it was inserted below entry '{before.heading}'"
        if before.text != after.text:
            return f"an earlier entry changed: entry '{before.heading}' differs"
    newest = max((e.when for e in old_entries if e.when), default=None)
    for e in entries[:added]:
        if e.when is None:
            return f"inserted heading '{e.heading}' has no valid date"
        if newest and e.when < newest:
            return f"new entry dated {_stamp(e.when)} is older than the newest existing entry {_stamp(newest)}"
    return None


def ledger_problem(old: bytes | None, new: bytes | None) -> str | None:
    """Why old -> new is not "valid whole rows appended at the end, the rest byte-identical", or None."""
    if new is None:
        return "the ledger is deleted"
    if old == new:
        return None
    header = ledger.HEADER.encode()
    if not old:  # creation (an empty file counts as none): the header, then valid rows
        if not new.startswith(header):
            return "line 1: the header differs from ledger.HEADER"
        return _rows_problem(new[len(header):], first_line=2, what="line")
    if not new.startswith(old):
        same = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
        line = old[:same].count(b"\n") + 1
        which = "line 1 (the header)" if line == 1 else f"line {line}"
        return f"{which} changed (rows are never edited or deleted)"
    if not old.endswith(b"\n"):
        return "the old last line has no newline (torn); nothing may be appended to it"
    return _rows_problem(new[len(old):], first_line=old.count(b"\n") + 1, what="appended line")


def _rows_problem(data: bytes, *, first_line: int, what: str) -> str | None:
    """The first bad line of `data` (whole rows, each ending in a newline), or None."""
    lines = data.split(b"\n")
    if lines.pop():  # the last piece is b"" only when data ends with a newline
        return f"{what} {first_line + len(lines)} is partial (no trailing newline)"
    for number, raw in enumerate(lines, start=first_line):
        try:
            result = ledger.parse_line(raw.decode())
        except UnicodeDecodeError:
            result = [("", "is not valid UTF-8")]
        if isinstance(result, list):
            field, message = result[0]
            return f"{what} {number}: " + (f"field {field!r}: " if field else "") + message
    return None


def check(changes: Iterable[Change], *, branch: str, meta_on: bool,
          require_meta_entry: bool = True) -> list[Violation]:
    """Every rule the change set breaks, one Violation per (path, rule), ordered by path then rule."""
    found: dict[tuple[str, str], Violation] = {}

    def flag(rule: str, path: str, message: str) -> None:
        found.setdefault((path, rule), Violation(rule, path, " ".join(message.splitlines())))

    changes = [c for c in changes if c.old != c.new]
    for c in changes:
        classes = classes_of(c.path)
        if "FROZEN" in classes and not meta_on:
            flag("frozen", c.path, f"{c.path} is FROZEN: only a human changes it. {UNLOCK}")
        if "HUMAN-ONLY" in classes and not meta_on:
            flag("human-only", c.path, f"{c.path} is HUMAN-ONLY: the agent never writes it; a human commits it "
                 "with META_MODE=1 in the environment. To reach the human, write in RESEARCH_JOURNAL.md.")
        if "GLOBAL" in classes and branch != names.MAIN:  # meta mode does not lift this one
            flag("global-off-main", c.path, f"{c.path} is GLOBAL: it is committed only from the root checkout "
                 f"on main, not on branch {branch!r}. Leave it out of this branch; in a worktree, eval.py and "
                 "the journal write the root checkout's copy.")
        if "APPEND-ONLY" in classes and not meta_on:
            if c.path == ledger.FILENAME:
                if problem := ledger_problem(c.old, c.new):
                    flag("ledger-append-only", c.path, f"{c.path} is APPEND-ONLY: {problem}. Only eval.py "
                         "appends whole rows; undo this change (a human repairs the ledger in META_MODE).")
            elif problem := journal_problem(c.old, c.new):
                flag("append-only", c.path, f"{c.path} is APPEND-ONLY: {problem}. Add new dated entries only "
                     "at the top, below the preamble, and leave earlier text byte-identical.")
    frozen = [c.path for c in changes if "FROZEN" in classes_of(c.path) and c.path != journal_format.META]
    if meta_on and require_meta_entry and frozen:
        entry = next((c for c in changes if c.path == journal_format.META), None)
        problem = journal_problem(entry.old, entry.new) if entry else "it is not in the change set"
        if problem:
            flag("meta-journal-missing", journal_format.META, f"{journal_format.META} needs a new dated entry on "
                 f"top (who, files, why) for the META_MODE change to FROZEN {', '.join(sorted(frozen))}: {problem}.")
    return [found[key] for key in sorted(found)]
