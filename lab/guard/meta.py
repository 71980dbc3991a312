"""Is META_MODE on? From the environment, or from the newest entry of human_journal.md while it is fresh.

Runs inside agent hooks on every tool call: stdlib only; the one I/O is reading human_journal.md.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Mapping
from datetime import datetime, timedelta

from lab import journal_format
from lab.taxonomy import meta_expiry_hours

JOURNAL = journal_format.HUMAN
FUTURE_SLACK = timedelta(minutes=5)  # a clock slightly off is fine; a date far ahead would stretch the expiry


# on: is META_MODE on; reason: one line, e.g. "on: META_MODE=1 in the environment".
MetaStatus = namedtuple("MetaStatus", "on reason")


def status(root: str | os.PathLike, *, environ: Mapping[str, str] | None = None, now: datetime | None = None) -> MetaStatus:
    """META_MODE for the checkout at `root`: on by environment, or by the newest human_journal.md entry."""
    environ = os.environ if environ is None else environ
    if environ.get("META_MODE") == "1":
        return MetaStatus(True, "on: META_MODE=1 in the environment")
    try:
        with open(os.path.join(root, JOURNAL), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return MetaStatus(False, f"off: there is no {JOURNAL}")
    except OSError as e:
        return MetaStatus(False, f"off: {JOURNAL} cannot be read ({e.strerror})")
    _, entries = journal_format.parse(data)
    if not entries:
        return MetaStatus(False, f"off: {JOURNAL} has no dated entries, so no entry says META_MODE=1")
    newest = entries[0]  # newest on top: an older META_MODE=1 entry below it never counts
    now = datetime.now() if now is None else now
    if newest.when is None:
        return MetaStatus(False, f"off: the newest {JOURNAL} entry '{newest.heading}' has no valid date")
    stamp = newest.when.strftime(journal_format.STAMP)
    lines = {line.strip() for line in newest.text.decode(errors="replace").splitlines()}
    if "META_MODE=0" in lines:
        return MetaStatus(False, f"off: the newest {JOURNAL} entry ({stamp}) says META_MODE=0")
    if "META_MODE=1" not in lines:
        return MetaStatus(False, f"off: the newest {JOURNAL} entry ({stamp}) does not say META_MODE=1")
    if newest.when > now + FUTURE_SLACK:
        return MetaStatus(False, f"off: the newest {JOURNAL} entry is dated {stamp}, in the future "
                          f"(now {now:{journal_format.STAMP}})")
    expires = newest.when + timedelta(hours=meta_expiry_hours())
    if now >= expires:
        return MetaStatus(False, f"off: the newest {JOURNAL} entry ({stamp}) expired at {expires:{journal_format.STAMP}}")
    return MetaStatus(True, f"on: {JOURNAL} entry of {stamp} says META_MODE=1 (expires {expires:{journal_format.STAMP}})")
