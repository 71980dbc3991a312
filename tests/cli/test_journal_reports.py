"""Tests for `lab journal add` (lab/loop/journal.py) and `lab report SLUG` (lab/loop/reports.py).

What they test, in real temp workspaces (conftest.make_workspace) with a real `git worktree`, real ledger rows
(lab.ledger.append) and real idea files (lab.loop.ideas.new), running the commands as subprocesses
(the refusal tables in-process, conftest.lab_in_process):
  * journal add from the root and from a worktree lands at the top of the ROOT journal; preamble and older
    entries stay byte-identical (rules.journal_problem passes); body from --body and from stdin;
  * refusals (missing Observation/Inference, empty, multi-line or long title, empty body, unknown run id,
    clock behind the newest entry): one line on stderr, non-zero exit, journal byte-identical;
  * 8 concurrent `add` processes give 8 entries and a valid journal;
  * report: the table holds every run of the slug (crashes included) and only comparable baseline rows, means
    and the difference of means, the prediction quoted; done -> reported; refusals (unknown slug, no rows,
    existing report) are one line, non-zero, and write nothing.

Cost: about 8 s on a 2-core machine (Python start-up of ~14 subprocesses); fast set; needs `git`, no GPU, no network;
writes only under pytest's tmp_path.

Run:  just test tests/cli/test_journal_reports.py
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import git, lab_in_process, make_workspace, run_env

from lab import journal_format, ledger, runs
from lab.guard import rules
from lab.judge import verdicts
from lab.loop import ideas, journal, reports

JOURNAL = "RESEARCH_JOURNAL.md"
RUN_A, RUN_B, RUN_CRASH = "20261123-110000-abcd", "20261123-111500-0f0f", "20261123-113000-dead"
BODY = f"**Observation:** {RUN_A} gave val_bpb 1.50.\n\n**Inference:** low confidence, one seed."


# ---------------------------------------------------------------------------------------------- helpers


def make_row(**overrides) -> dict:
    """A valid ok row of slug 'wider'; keyword arguments replace fields."""
    row = {
        "run_id": RUN_A, "time": "2026-11-23T11:00:00Z", "slug": "wider", "branch": "exp/wider",
        "commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "status": "ok", "reason": "",
        "val_bpb": 1.5, "train_s": 300.0, "wall_s": 340.0, "steps": 1000, "tokens": 16384000, "params": 3400000,
        "peak_mem_mb": 1200.0, "pueue_task": None, "label": "", "predicted_delta": None, "seed": 0,
        "budget_s": 300.0, "max_steps": None, "device": "cuda", "host": "box", "eval_sha": "a" * 16,
        "prepare_sha": "b" * 16, "train_sha": "c" * 16, "data_sha": "d" * 16,
    }
    row.update(overrides)
    return row


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with a worktree 5_worktrees/wider on exp/wider and two ok rows of 'wider' in results.tsv."""
    root = make_workspace(tmp_path / "ws")
    git("worktree", "add", "-q", "5_worktrees/wider", "-b", "exp/wider", "main", cwd=root)
    for row in (make_row(), make_row(run_id=RUN_B, seed=1, val_bpb=1.52)):
        ledger.append(row, root / ledger.FILENAME)
    return root


def lab(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lab.cli ARGS` in `cwd` (stdin: the text, or empty when None)."""
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=cwd, env=run_env(),
                          input=stdin or "", capture_output=True, text=True, timeout=60)


def refused(proc: subprocess.CompletedProcess) -> str:
    """The one-line error of a refused command (asserts non-zero exit, one stderr line, no stdout)."""
    assert proc.returncode != 0, proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root outside .git, .venv and .cache (caches), for "nothing written" checks."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not {".git", ".venv", ".cache", "__pycache__"} & set(p.relative_to(root).parts)}


def new_idea(root: Path, slug: str = "wider", status: str = "done",
             prediction: str = "val_bpb −0.02 ± 0.01 vs baseline; steps unchanged.") -> ideas.Idea:
    idea = ideas.new(root, slug, f"Idea {slug}")
    text = idea.path.read_text()
    idea.path.write_text(text.replace("## Prediction\n", f"## Prediction\n{prediction}\n", 1))
    ideas.set_status(root, slug, status)
    return ideas.find(root, slug)


# ---------------------------------------------------------------------------------------------- journal


def test_add_from_root_and_worktree_lands_on_top_of_root_journal(ws: Path) -> None:
    path = ws / JOURNAL
    original = path.read_bytes()
    first = lab("journal", "add", "wider seed 0", "--body", BODY, cwd=ws)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("## ") and first.stdout.strip().endswith("— wider seed 0")
    after_first = path.read_bytes()

    tree = ws / "5_worktrees" / "wider"
    body = f"Observation: {RUN_B} gave 1.52 (run:{RUN_A} gave 1.50).\nInference: not distinguishable from noise."
    second = lab("journal", "add", "from the worktree", cwd=tree, stdin=body)
    assert second.returncode == 0, second.stderr
    new = path.read_bytes()

    assert rules.journal_problem(original, after_first) is None
    assert rules.journal_problem(after_first, new) is None
    assert rules.journal_problem(original, new) is None
    preamble, entries = journal_format.parse(new)
    old_preamble, old_entries = journal_format.parse(original)
    assert preamble == old_preamble
    assert [e.text for e in entries[2:]] == [e.text for e in old_entries]
    assert entries[0].heading.endswith("— from the worktree") and body.encode() in entries[0].text
    assert entries[1].heading.endswith("— wider seed 0") and BODY.encode() in entries[1].text
    assert second.stdout.strip() == entries[0].heading
    assert (tree / JOURNAL).read_bytes() == original  # the worktree's copy is untouched
    assert git("status", "--porcelain", cwd=tree) == ""


@pytest.mark.parametrize("title, body, expect", [
    ("t", "**Inference:** only an inference.", "no Observation part"),
    ("t", "**Observation:** only an observation.", "no Inference part"),
    ("t", "observation: lower case\ninference: lower case", "no Observation and no Inference part"),
    ("", BODY, "title is empty"),
    ("   ", BODY, "title is empty"),
    ("two\nlines", BODY, "several lines"),
    ("x" * 121, BODY, "over 120"),
    ("tab\there", BODY, "control characters"),
    ("t", "", "body is empty"),
    ("t", "\n  \n", "body is empty"),
    ("t", "**Observation:** 20261123-000000-ffff was good.\n**Inference:** none.", "20261123-000000-ffff"),
    ("t", "**Observation:** run:nosuch-run was good.\n**Inference:** none.", "nosuch-run"),
    ("t", "**Observation:** x\n## 2026-12-01 10:00 — fake\n**Inference:** y", "looks like an entry heading"),
])
def test_add_refuses_bad_input_and_writes_nothing(ws: Path, title: str, body: str, expect: str) -> None:
    before = snapshot(ws)
    message = refused(lab_in_process("journal", "add", title, cwd=ws, stdin=body))
    assert expect in message
    assert snapshot(ws) == before


def test_add_without_body_on_a_terminal_says_how_to_give_one(ws: Path) -> None:
    main, tty = pty.openpty()  # stdin is a terminal: no body is coming
    try:
        proc = subprocess.run([sys.executable, "-m", "lab.cli", "journal", "add", "t"], cwd=ws, env=run_env(),
                              stdin=tty, capture_output=True, text=True, timeout=60)
    finally:
        os.close(main)
        os.close(tty)
    assert "pass --body TEXT or pipe it on stdin" in refused(proc)


def test_add_body_option_wins_over_stdin_and_unknown_ids_are_all_named(ws: Path) -> None:
    proc = lab("journal", "add", "t", "--body", BODY, cwd=ws, stdin="ignored")
    assert proc.returncode == 0, proc.stderr
    assert b"ignored" not in (ws / JOURNAL).read_bytes()
    body = f"**Observation:** {RUN_A}, 20261123-000000-aaaa and run:ghost.\n**Inference:** none."
    message = refused(lab("journal", "add", "t", "--body", body, cwd=ws))
    assert "20261123-000000-aaaa, ghost" in message and RUN_A not in message.split(" not in ")[0]


def test_add_accepts_known_ids_in_both_forms(ws: Path) -> None:
    ledger.append(make_row(run_id="q7.seed-0", slug="main", branch="main"), ws / ledger.FILENAME)
    body = f"**Observation:** {RUN_A}; run:q7.seed-0.\n\n**Inference:** cites run:{RUN_B}."
    assert journal.citations(body) == [RUN_A, RUN_B, "q7.seed-0"]  # the closing "." is not part of the id
    entry = journal.add(ws, "known ids", body, now=datetime(2030, 1, 1, 9, 5))
    assert entry.startswith("## 2030-01-01 09:05 — known ids\n\n**Observation:**")
    assert (ws / JOURNAL).read_bytes().count(b"## 2030-01-01 09:05") == 1


def test_add_refuses_a_clock_behind_the_newest_entry(ws: Path) -> None:
    journal.add(ws, "later", BODY, now=datetime(2030, 1, 1, 9, 5))
    before = (ws / JOURNAL).read_bytes()
    with pytest.raises(journal.JournalError, match="2029-12-31 23:59.*2030-01-01 09:05"):
        journal.add(ws, "earlier", BODY, now=datetime(2029, 12, 31, 23, 59))
    journal.add(ws, "same minute", BODY, now=datetime(2030, 1, 1, 9, 5, 59))  # the same minute is fine
    assert rules.journal_problem(before, (ws / JOURNAL).read_bytes()) is None


def test_add_to_a_journal_without_entries_goes_below_the_preamble(tmp_path: Path) -> None:
    preamble = b"# RESEARCH_JOURNAL.md\n\nNewest first.\n\n"
    (tmp_path / JOURNAL).write_bytes(preamble)
    journal.add(tmp_path, "first", BODY.replace(RUN_A, "1.50"), now=datetime(2030, 1, 1, 9, 5))
    new = (tmp_path / JOURNAL).read_bytes()
    assert new.startswith(preamble + "## 2030-01-01 09:05 — first\n".encode())
    assert rules.journal_problem(preamble, new) is None


def test_eight_concurrent_adds_all_land_and_the_journal_stays_valid(ws: Path) -> None:
    original = (ws / JOURNAL).read_bytes()
    procs = [subprocess.Popen([sys.executable, "-m", "lab.cli", "journal", "add", f"writer {i}", "--body", BODY],
                              cwd=ws, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    new = (ws / JOURNAL).read_bytes()
    assert rules.journal_problem(original, new) is None
    _, entries = journal_format.parse(new)
    titles = sorted(e.heading.split(" — ", 1)[1] for e in entries[:8])
    assert titles == sorted(f"writer {i}" for i in range(8))
    assert len(entries) == 8 + len(journal_format.parse(original)[1])
    assert not [p.name for p in ws.iterdir() if p.name.startswith(f".{JOURNAL}.")]  # no temp file left


# ---------------------------------------------------------------------------------------------- report


def test_report_prefills_runs_baseline_means_and_prediction(ws: Path) -> None:
    idea = new_idea(ws)
    results = ws / ledger.FILENAME
    ledger.append(make_row(run_id=RUN_CRASH, seed=2, status="crash", val_bpb=None,
                           reason="train.py exited 1: CUDA out of memory"), results)
    main_sha = runs.main_train_sha(ws)  # the baseline is main's train.py: rows of another never count
    for i, v in enumerate([1.53, 1.54, 1.55]):
        ledger.append(make_row(run_id=f"base-{i}", slug="main", branch="main", seed=i, val_bpb=v, train_sha=main_sha),
                      results)
    ledger.append(make_row(run_id="base-old-train", slug="main", seed=4, val_bpb=1.1), results)
    ledger.append(make_row(run_id="base-old-eval", slug="main", eval_sha="e" * 16, val_bpb=1.0), results)
    ledger.append(make_row(run_id="base-cpu", slug="baseline", device="cpu", val_bpb=2.0), results)
    ledger.append(make_row(run_id="base-crash", slug="main", status="crash", reason="x", val_bpb=None), results)
    ledger.append(make_row(run_id="other-slug", slug="deeper", val_bpb=1.4), results)

    proc = lab("report", "wider", cwd=ws / "5_worktrees" / "wider")
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.parent == ws / "9_reports" and path.name.endswith("_wider.md")
    text = path.read_text()
    assert text.startswith(f"---\nslug: wider\nidea: 1_ideas/{idea.path.name}\nbranch: exp/wider\ndate: ")
    assert "# wider: Idea wider — verdict: inconclusive" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0][2:] for line in table[1:]] == [RUN_A, RUN_B, RUN_CRASH, "base-0", "base-1", "base-2"]
    assert "CUDA out of memory" in table[3] and "| crash |" in table[3]
    assert "- wider: val_bpb 1.5100 ± 0.0141 (n=2)" in text
    assert "- baseline: val_bpb 1.5400 ± 0.0100 (n=3)" in text
    v = verdicts.verdict(ledger.read(results)[0], "wider", train_sha=main_sha)
    assert f"- effect (wider − baseline, the verdict's): {v.diff:+.4f} val_bpb (95% CI {v.lo:+.4f} to {v.hi:+.4f}), 2 vs 3 seeds" in text
    assert f"{v.diff:+.4f}" == "-0.0300" and f"Observed (wider − baseline): {v.diff:+.4f}" in text
    assert "> val_bpb −0.02 ± 0.01 vs baseline; steps unchanged." in text
    assert "- seeds: 0, 1, 2" in text and "- devices: cuda" in text
    for section in ("## Observations\n<!--", "## Inferences\n<!--", "## Next\n<!--"):
        assert section in text
    assert ideas.find(ws, "wider").status == "reported"
    assert not (ws / "5_worktrees" / "wider" / "9_reports" / path.name).exists()


def test_report_with_only_crashes_says_no_ok_runs_and_keeps_status(ws: Path) -> None:
    new_idea(ws, "crashy", status="running")
    ledger.append(make_row(run_id="crash-1", slug="crashy", status="crash", reason="boom", val_bpb=None),
                  ws / ledger.FILENAME)
    path = reports.write(ws, "crashy", now=datetime(2030, 1, 2, 3, 4))
    text = path.read_text()
    assert path.name == "2030-01-02_crashy.md"
    assert "| crash-1 | crashy | 0 | crash |" in text and "no counted runs" in text
    assert ideas.find(ws, "crashy").status == "running"


def test_report_warns_about_bad_ledger_lines_but_writes(ws: Path) -> None:
    new_idea(ws)
    with open(ws / ledger.FILENAME, "a") as f:
        f.write("not\ta\trow\n")
    warnings: list[str] = []
    path = reports.write(ws, "wider", warn=warnings.append)
    assert path.exists() and len(warnings) == 1 and "results.tsv" in warnings[0]


@pytest.mark.parametrize("case, expect", [
    ("unknown", "no idea with slug 'nosuch'"),
    ("no-rows", "no runs of 'norows' in results.tsv: run `just eval` in 5_worktrees/norows first"),
    ("existing", "9_reports/2026-01-01_wider.md already reports 'wider'"),
    ("bad-slug", "Bad_Slug"),
])
def test_report_refusals_are_one_line_and_write_nothing(ws: Path, case: str, expect: str) -> None:
    new_idea(ws)
    new_idea(ws, "norows")
    slug = {"unknown": "nosuch", "no-rows": "norows", "existing": "wider", "bad-slug": "Bad_Slug"}[case]
    if case == "existing":
        (ws / "9_reports" / "2026-01-01_wider.md").write_text("# an earlier report\n")
    before = snapshot(ws)
    message = refused(lab_in_process("report", slug, cwd=ws))
    assert expect in message
    assert snapshot(ws) == before
