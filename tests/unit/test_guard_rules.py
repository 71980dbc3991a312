"""Tests for lab/guard/rules.py (the taxonomy's rules over a change set) and lab/guard/meta.py (is META_MODE on?).

What they test, on real bytes (journals, results.tsv rows built with lab.ledger.format_row), no mocks:
  * each rule of rules.check firing and not firing: frozen, human-only, meta-journal-missing,
    global-off-main (also in META_MODE), append-only (journals), ledger-append-only (results.tsv);
  * journal_problem: new entries on top pass; appended at the bottom, an edited or deleted entry, a changed
    preamble, a bad or older date, deletion fail; creation passes; messages are one line naming the file;
  * ledger_problem: whole valid rows appended pass; edited/deleted rows, header changes, invalid or partial
    appended lines fail, naming line and field; creation with the header passes;
  * meta.status: environment, a fresh META_MODE=1 entry, expiry, META_MODE=0, a newer entry without the
    line, a future date, no journal, and the real human_journal.md.

Cost: well under a second (fast set); pure Python, writes only under pytest's tmp_path, no git, no GPU, no network.

Run:  just test tests/unit/test_guard_rules.py
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lab import ledger
from lab.guard import meta
from lab.guard.rules import Change, check, journal_problem, ledger_problem
from lab.journal_format import parse as parse_journal

REPO = Path(__file__).resolve().parents[2]
UNLOCK_WORDS = ("META_MODE=1", "human_journal.md", "meta_journal.md")

# A journal as the repo writes them: a title, a note, an HTML comment, examples that must not count as entries.
PREAMBLE = b"""# Research journal

> **GLOBAL, APPEND-ONLY.** New entries go on top.

<!-- entries below, newest first -->

    ## 2026-01-01 00:00 \xe2\x80\x94 an indented example, not an entry

```
## YYYY-MM-DD HH:MM \xe2\x80\x94 title
```

"""


def entry(stamp: str, title: str = "note", body: str = "Observation: none.") -> bytes:
    return f"## {stamp} \u2014 {title}\n\n{body}\n\n".encode()


OLD_JOURNAL = PREAMBLE + entry("2026-11-23 10:00", "second") + entry("2026-11-20 10:00", "first")
NEW_ENTRY = entry("2026-11-23 11:30", "third")
META_ENTRY = entry("2026-11-23 12:00", "eval.py timeout", "- who: a human\n- files: eval.py\n- why: a test")


def make_row(**over: object) -> bytes:
    row: dict[str, object] = dict(run_id="r1", time="2026-11-23T09:00:00Z", slug="baseline", dirty=0,
                                  status="ok", val_bpb=1.25, wall_s=300.5, seed=0, budget_s=300.0, device="cpu")
    return ledger.format_row({**row, **over}).encode()


HEADER = ledger.HEADER.encode()
OLD_LEDGER = HEADER + make_row(run_id="r1") + make_row(run_id="r2")  # lines 1-3


def rules(changes: list[Change], *, branch: str = "exp/x", meta_on: bool = False, **kw: bool) -> list[tuple[str, str]]:
    return [(v.rule, v.path) for v in check(changes, branch=branch, meta_on=meta_on, **kw)]


def edit(path: str, old: bytes | None = b"x = 1\n", new: bytes | None = b"x = 2\n") -> Change:
    return Change(path, old, new)


# ------------------------------------------------------------------------------------------ check(): rules

@pytest.mark.parametrize("path", ["train.py", "1_ideas/2026-11-23_wider.md", "9_reports/x.md", "0_docs/papers/x.md"])
@pytest.mark.parametrize("meta_on", [False, True])
def test_regular_files_are_always_fine(path: str, meta_on: bool) -> None:
    assert rules([edit(path), edit(path + ".new", None, b"new\n")], meta_on=meta_on) == []


@pytest.mark.parametrize("path", ["eval.py", "justfile", "lab/x.py", "tests/x.py", "program.md", "AGENTS.md",
                                  "1_ideas/_TEMPLATE.md"])
def test_frozen_files_are_blocked_outside_meta_mode(path: str) -> None:
    for change in (edit(path), edit(path, None, b"new\n"), edit(path, b"old\n", None)):
        [v] = check([change], branch="main", meta_on=False)
        assert (v.rule, v.path) == ("frozen", path)
        assert v.message.startswith(f"{path} is FROZEN") and "\n" not in v.message
        assert all(word in v.message for word in UNLOCK_WORDS)


def test_unchanged_files_are_ignored() -> None:
    assert rules([edit("eval.py", b"same\n", b"same\n"), edit("results.tsv", None, None)], branch="main") == []


def test_human_journal_is_blocked_outside_meta_mode() -> None:
    old, new = PREAMBLE, entry("2026-11-23 11:00", "directive")
    assert rules([edit("human_journal.md", old, old + new)], branch="main") == [("human-only", "human_journal.md")]
    [v] = check([edit("human_journal.md", old, old + new)], branch="main", meta_on=False)
    assert "HUMAN-ONLY" in v.message and "META_MODE=1" in v.message and "\n" not in v.message
    assert rules([edit("human_journal.md", old, old + new)], branch="main", meta_on=True) == []


def test_meta_mode_frozen_change_needs_a_new_meta_journal_entry_in_the_same_change_set() -> None:
    meta_old = PREAMBLE
    frozen = [edit("eval.py"), edit("lab/x.py", None, b"new\n")]
    assert rules(frozen, meta_on=True) == [("meta-journal-missing", "meta_journal.md")]
    [v] = check(frozen, branch="exp/x", meta_on=True)
    assert "eval.py, lab/x.py" in v.message and "\n" not in v.message
    # an unchanged or edited meta journal does not count; a new dated entry on top does
    assert rules([*frozen, edit("meta_journal.md", meta_old, meta_old)], meta_on=True) == \
        [("meta-journal-missing", "meta_journal.md")]
    assert rules([*frozen, edit("meta_journal.md", meta_old + META_ENTRY, meta_old + META_ENTRY + b"x\n")],
                 meta_on=True) == [("meta-journal-missing", "meta_journal.md")]
    assert rules([*frozen, edit("meta_journal.md", meta_old, meta_old + META_ENTRY)], meta_on=True) == []
    assert rules([*frozen, edit("meta_journal.md", None, meta_old + META_ENTRY)], meta_on=True) == []
    # a hook checking one edit at a time asks for no entry; the meta journal alone needs none either
    assert rules(frozen, meta_on=True, require_meta_entry=False) == []
    assert rules([edit("meta_journal.md", meta_old, meta_old + META_ENTRY)], meta_on=True) == []


def test_meta_journal_is_frozen_and_append_only_outside_meta_mode() -> None:
    bad = edit("meta_journal.md", PREAMBLE + META_ENTRY, PREAMBLE)
    assert rules([bad], branch="main") == [("append-only", "meta_journal.md"), ("frozen", "meta_journal.md")]


@pytest.mark.parametrize("meta_on", [False, True])
def test_global_files_are_committed_only_on_main_even_in_meta_mode(meta_on: bool) -> None:
    changes = [edit("results.tsv", OLD_LEDGER, OLD_LEDGER + make_row(run_id="r3")),
               edit("RESEARCH_JOURNAL.md", OLD_JOURNAL, PREAMBLE + NEW_ENTRY + OLD_JOURNAL[len(PREAMBLE):])]
    assert rules(changes, branch="exp/wider", meta_on=meta_on) == [
        ("global-off-main", "RESEARCH_JOURNAL.md"), ("global-off-main", "results.tsv")]
    [v, _] = check(changes, branch="exp/wider", meta_on=meta_on)
    assert "GLOBAL" in v.message and "exp/wider" in v.message and "\n" not in v.message
    assert rules(changes, branch="main", meta_on=meta_on) == []


def test_append_only_rules_fire_outside_meta_mode_only() -> None:
    changes = [edit("RESEARCH_JOURNAL.md", OLD_JOURNAL, OLD_JOURNAL + NEW_ENTRY),
               edit("results.tsv", OLD_LEDGER, HEADER + make_row(run_id="r1"))]
    assert rules(changes, branch="main") == [("append-only", "RESEARCH_JOURNAL.md"),
                                             ("ledger-append-only", "results.tsv")]
    for v in check(changes, branch="main", meta_on=False):
        assert v.message.startswith(f"{v.path} is APPEND-ONLY: ") and "\n" not in v.message
    assert rules(changes, branch="main", meta_on=True) == []


def test_violations_are_ordered_by_path_then_rule_one_per_pair() -> None:
    changes = [edit("results.tsv", OLD_LEDGER, b""), edit("eval.py"), edit("eval.py", b"a\n", b"b\n"),
               edit("human_journal.md", OLD_JOURNAL, PREAMBLE)]
    assert rules(changes) == [("frozen", "eval.py"), ("append-only", "human_journal.md"),
                              ("human-only", "human_journal.md"), ("global-off-main", "results.tsv"),
                              ("ledger-append-only", "results.tsv")]


# --------------------------------------------------------------------------------------- journal_problem

def test_journal_new_entries_on_top_pass() -> None:
    body = OLD_JOURNAL[len(PREAMBLE):]
    assert journal_problem(OLD_JOURNAL, PREAMBLE + NEW_ENTRY + body) is None
    two = entry("2026-11-24 08:00", "fourth") + NEW_ENTRY
    assert journal_problem(OLD_JOURNAL, PREAMBLE + two + body) is None
    same_minute = entry("2026-11-23 10:00", "also at ten")
    assert journal_problem(OLD_JOURNAL, PREAMBLE + same_minute + body) is None
    assert journal_problem(PREAMBLE, PREAMBLE + NEW_ENTRY) is None  # the first entry below a bare preamble


def test_journal_entry_on_top_of_the_real_journals_passes() -> None:
    for name in ("RESEARCH_JOURNAL.md", "human_journal.md", "meta_journal.md"):
        old = (REPO / name).read_bytes()
        preamble, entries = parse_journal(old)
        assert all(e.when for e in entries), f"{name} has an entry heading without a valid date"
        assert journal_problem(old, preamble + entry("2099-01-01 00:00") + old[len(preamble):]) is None


def test_journal_creation_passes_and_deletion_fails() -> None:
    assert journal_problem(None, OLD_JOURNAL) is None
    assert journal_problem(None, PREAMBLE) is None
    assert "deleted" in journal_problem(OLD_JOURNAL, None)
    assert "no valid date" in journal_problem(None, PREAMBLE + entry("2026-02-30 10:00"))


@pytest.mark.parametrize(("new", "reason"), [
    (OLD_JOURNAL + NEW_ENTRY, "not at the top"),
    (OLD_JOURNAL + b"one more line\n", "not at the top"),
    (PREAMBLE + entry("2026-11-23 10:00", "second") + NEW_ENTRY + entry("2026-11-20 10:00", "first"),
     "not at the top: it was inserted below entry '## 2026-11-23 10:00 \u2014 second'"),
    (PREAMBLE + NEW_ENTRY + OLD_JOURNAL[len(PREAMBLE):].replace(b"first", b"First"),
     "an earlier entry changed: entry '## 2026-11-20 10:00 \u2014 first' differs"),
    (OLD_JOURNAL.replace(b"none.", b"none!", 1), "entry '## 2026-11-23 10:00 \u2014 second' differs"),
    (PREAMBLE + entry("2026-11-20 10:00", "first"), "deleted: '## 2026-11-23 10:00 \u2014 second' is missing"),
    (PREAMBLE + entry("2026-11-23 10:00", "second"), "deleted: '## 2026-11-20 10:00 \u2014 first' is missing"),
    (PREAMBLE, "deleted"),
    (OLD_JOURNAL.replace(b"# Research journal", b"# Journal"), "preamble changed"),
    (OLD_JOURNAL.replace(b"    ## 2026-01-01", b"## 2026-01-01"), "preamble changed"),
    (PREAMBLE + b"A stray line\n\n" + OLD_JOURNAL[len(PREAMBLE):], "preamble changed"),
    (PREAMBLE + entry("2026-13-99 10:00") + OLD_JOURNAL[len(PREAMBLE):],
     "inserted heading '## 2026-13-99 10:00 \u2014 note' has no valid date"),
    (PREAMBLE + entry("2026-11-01 00:00") + OLD_JOURNAL[len(PREAMBLE):],
     "new entry dated 2026-11-01 00:00 is older than the newest existing entry 2026-11-23 10:00"),
])
def test_journal_changes_that_are_not_new_entries_on_top_fail(new: bytes, reason: str) -> None:
    problem = journal_problem(OLD_JOURNAL, new)
    assert problem is not None and reason in problem and "\n" not in problem
    [v] = check([edit("RESEARCH_JOURNAL.md", OLD_JOURNAL, new)], branch="main", meta_on=False)
    assert v.rule == "append-only" and v.message.startswith("RESEARCH_JOURNAL.md is APPEND-ONLY: ")
    assert reason in v.message and "\n" not in v.message


def test_journal_parser_counts_only_lines_starting_with_a_dated_heading() -> None:
    preamble, entries = parse_journal(OLD_JOURNAL)
    assert preamble == PREAMBLE
    assert [(e.heading, e.when) for e in entries] == [
        ("## 2026-11-23 10:00 \u2014 second", datetime(2026, 11, 23, 10, 0)),
        ("## 2026-11-20 10:00 \u2014 first", datetime(2026, 11, 20, 10, 0))]
    assert b"".join(e.text for e in entries) == OLD_JOURNAL[len(PREAMBLE):]
    assert parse_journal(b"") == (b"", [])


# ---------------------------------------------------------------------------------------- ledger_problem

def test_ledger_valid_rows_appended_pass() -> None:
    assert ledger_problem(OLD_LEDGER, OLD_LEDGER + make_row(run_id="r3")) is None
    failed = make_row(run_id="r4", status="crash", reason="OOM\tat step 3\nTraceback", val_bpb=None)
    assert ledger_problem(OLD_LEDGER, OLD_LEDGER + make_row(run_id="r3") + failed) is None
    assert ledger_problem(OLD_LEDGER, OLD_LEDGER) is None


def test_ledger_creation_with_the_header_passes() -> None:
    assert ledger_problem(None, HEADER) is None
    assert ledger_problem(None, OLD_LEDGER) is None
    assert ledger_problem(b"", OLD_LEDGER) is None
    assert "line 1" in ledger_problem(None, make_row())
    bad = make_row(run_id="r2").replace(b"\tok\t", b"\tfine\t")
    assert "line 3: field 'status'" in ledger_problem(None, HEADER + make_row(run_id="r1") + bad)


@pytest.mark.parametrize(("new", "reason"), [
    (HEADER + make_row(run_id="r1") + make_row(run_id="r2", val_bpb=1.0), "line 3 changed (rows are never edited"),
    (HEADER + make_row(run_id="r2"), "line 2 changed"),
    (HEADER + make_row(run_id="r1"), "line 3 changed"),
    (HEADER + make_row(run_id="r1") + make_row(run_id="r3") + make_row(run_id="r2"), "line 3 changed"),
    (HEADER.replace(b"run_id", b"id") + OLD_LEDGER[len(HEADER):], "line 1 (the header) changed"),
    (HEADER, "line 2 changed"),
    (b"", "line 1 (the header) changed"),
    (None, "deleted"),
    (OLD_LEDGER + make_row(run_id="r3").replace(b"\tok\t", b"\tgreat\t"),
     "appended line 4: field 'status': 'great' is not a status"),
    (OLD_LEDGER + make_row(run_id="r3") + make_row(run_id="r4").replace(b"2026-11-23T09", b"2026-11-23 09"),
     "appended line 5: field 'time'"),
    (OLD_LEDGER + make_row(run_id="r3").replace(b"\t1.25\t", b"\t\t"), "appended line 4: field 'val_bpb'"),
    (OLD_LEDGER + b"r3\tonly three\tcolumns\n", "appended line 4: has 3 columns"),
    (OLD_LEDGER + make_row(run_id="r3")[:-1], "appended line 4 is partial (no trailing newline)"),
    (OLD_LEDGER + make_row(run_id="r3") + make_row(run_id="r4")[:40], "appended line 5 is partial"),
    (OLD_LEDGER + b"\xff\n", "appended line 4: is not valid UTF-8"),
])
def test_ledger_changes_that_are_not_valid_whole_rows_appended_fail(new: bytes | None, reason: str) -> None:
    problem = ledger_problem(OLD_LEDGER, new)
    assert problem is not None and reason in problem and "\n" not in problem
    [v] = check([edit("results.tsv", OLD_LEDGER, new)], branch="main", meta_on=False)
    assert v.rule == "ledger-append-only" and v.message.startswith("results.tsv is APPEND-ONLY: ")
    assert reason in v.message and "\n" not in v.message


def test_ledger_with_a_torn_last_line_takes_no_appends() -> None:
    torn = OLD_LEDGER + make_row(run_id="r3")[:30]
    assert "torn" in ledger_problem(torn, torn + make_row(run_id="r4"))
    assert ledger_problem(torn, torn) is None


# ------------------------------------------------------------------------------------------ meta.status

NOW = datetime(2026, 11, 23, 12, 0)


def human_journal(tmp_path: Path, *entries: bytes) -> Path:
    (tmp_path / "human_journal.md").write_bytes(PREAMBLE + b"".join(entries))
    return tmp_path


def meta_entry(when: datetime, *lines: str) -> bytes:
    return entry(f"{when:%Y-%m-%d %H:%M}", "directive", "\n".join(["Fix eval.py's timeout.", *lines]))


def test_meta_on_from_the_environment(tmp_path: Path) -> None:
    assert meta.status(tmp_path, environ={"META_MODE": "1"}, now=NOW) == \
        meta.MetaStatus(True, "on: META_MODE=1 in the environment")
    assert not meta.status(tmp_path, environ={"META_MODE": "0"}, now=NOW).on
    assert not meta.status(tmp_path, environ={"META_MODE": "yes"}, now=NOW).on


def test_meta_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("META_MODE", "1")
    assert meta.status(tmp_path).on
    monkeypatch.delenv("META_MODE")
    assert not meta.status(tmp_path).on


def test_meta_on_from_a_fresh_human_journal_entry(tmp_path: Path) -> None:
    root = human_journal(tmp_path, meta_entry(datetime(2026, 11, 23, 9, 0), "  META_MODE=1  "),
                         meta_entry(datetime(2026, 11, 22, 9, 0)))
    assert meta.status(root, environ={}, now=NOW) == meta.MetaStatus(
        True, "on: human_journal.md entry of 2026-11-23 09:00 says META_MODE=1 (expires 2026-11-23 21:00)")
    assert meta.status(root, environ={}, now=datetime(2026, 11, 23, 20, 59)).on


def test_meta_expires(tmp_path: Path) -> None:
    root = human_journal(tmp_path, meta_entry(datetime(2026, 11, 23, 9, 0), "META_MODE=1"))
    for now in (datetime(2026, 11, 23, 21, 0), datetime(2026, 12, 1)):
        assert meta.status(root, environ={}, now=now) == meta.MetaStatus(
            False, "off: the newest human_journal.md entry (2026-11-23 09:00) expired at 2026-11-23 21:00")


def test_meta_off_when_the_newest_entry_says_meta_mode_0(tmp_path: Path) -> None:
    root = human_journal(tmp_path, meta_entry(datetime(2026, 11, 23, 11, 0), "META_MODE=1", "META_MODE=0"))
    status = meta.status(root, environ={}, now=NOW)
    assert not status.on and "META_MODE=0" in status.reason


def test_meta_off_when_a_newer_entry_lacks_the_line(tmp_path: Path) -> None:
    root = human_journal(tmp_path, meta_entry(datetime(2026, 11, 23, 11, 0), "Also: try wider models."),
                         meta_entry(datetime(2026, 11, 23, 10, 0), "META_MODE=1"))
    assert meta.status(root, environ={}, now=NOW) == meta.MetaStatus(
        False, "off: the newest human_journal.md entry (2026-11-23 11:00) does not say META_MODE=1")
    # a mention inside a sentence is not the line
    root = human_journal(tmp_path, meta_entry(datetime(2026, 11, 23, 11, 0), "Do not set META_MODE=1 yet."))
    assert not meta.status(root, environ={}, now=NOW).on


def test_meta_off_when_dated_in_the_future(tmp_path: Path) -> None:
    root = human_journal(tmp_path, meta_entry(NOW + timedelta(hours=1), "META_MODE=1"))
    status = meta.status(root, environ={}, now=NOW)
    assert not status.on and "future" in status.reason
    # a clock a few minutes off is tolerated
    root = human_journal(tmp_path, meta_entry(NOW + timedelta(minutes=4), "META_MODE=1"))
    assert meta.status(root, environ={}, now=NOW).on


def test_meta_off_without_a_journal_or_entries(tmp_path: Path) -> None:
    status = meta.status(tmp_path, environ={}, now=NOW)
    assert not status.on and "human_journal.md" in status.reason
    status = meta.status(human_journal(tmp_path), environ={}, now=NOW)
    assert not status.on and "no dated entries" in status.reason


def test_meta_now_defaults_to_the_local_clock(tmp_path: Path) -> None:
    root = human_journal(tmp_path, meta_entry(datetime.now() - timedelta(minutes=1), "META_MODE=1"))
    assert meta.status(root, environ={}).on
    root = human_journal(tmp_path, meta_entry(datetime.now() - timedelta(hours=13), "META_MODE=1"))
    assert not meta.status(root, environ={}).on


def test_meta_reads_the_real_human_journal() -> None:
    status = meta.status(REPO, environ={}, now=NOW)
    assert status.reason.startswith(("on: ", "off: ")) and "\n" not in status.reason
