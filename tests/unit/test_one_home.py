"""One home per concept: the journal format, the names of main, a look's sizes, the critic's brief, the UTC
time format, the local date and minute formats and the table printer are each defined once, and no module under lab/ spells a copy.

Parses lab/ with ast (nothing imported but lab.loop.ideas for the brief); a planted copy shows each check can fail.
Fast: under a second. Run: `just test tests/unit/test_one_home.py`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lab.loop import ideas

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab"
JOURNALS = ("RESEARCH_JOURNAL.md", "human_journal.md", "meta_journal.md")
# name -> its home (repo-relative): the only module that assigns it at the top level.
HOMES = {
    "HEADING": "lab/journal_format.py", "STAMP": "lab/journal_format.py", "Entry": "lab/journal_format.py",
    "MAIN": "lab/names.py", "BASELINE_SLUGS": "lab/names.py", "EXP": "lab/names.py",
    "BASE": "lab/names.py", "BASELINE": "lab/names.py",  # main's former names elsewhere: names.MAIN now
    "LOOKS": "lab/judge/verdicts.py", "POWER": "lab/judge/verdicts.py", "_NUMBER": "lab/judge/verdicts.py",
    "TIME_FORMAT": "lab/ledger.py",
}
FUNCTIONS = {"parse_journal": "lab/journal_format.py", "utc_now": "lab/ledger.py", "parse_prediction": "lab/judge/verdicts.py",
             "aligned": "lab/tables.py", "critic_brief": "lab/loop/ideas.py"}


def sources() -> dict[str, str]:
    """lab/'s modules and the grader's two entry files at the root."""
    paths = [*sorted(LAB.rglob("*.py")), REPO / "eval.py", REPO / "prepare.py"]
    return {p.relative_to(REPO).as_posix(): p.read_text() for p in paths if "__pycache__" not in p.parts}


def strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of every string constant, f-string pieces included."""
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def dated_heading(node: ast.AST) -> bool:
    """An f-string that writes a journal heading by hand: `f"## {when:%Y-%m-%d %H:%M} ..."`."""
    if not isinstance(node, ast.JoinedStr) or len(node.values) < 2:
        return False
    head, value = node.values[0], node.values[1]
    return (isinstance(head, ast.Constant) and str(head.value).endswith("## ") and isinstance(value, ast.FormattedValue)
            and value.format_spec is not None and "%Y" in ast.unparse(value.format_spec))


def copies(files: dict[str, str]) -> list[str]:
    """One line per literal copy of a concept outside its home."""
    found = []
    for path, text in files.items():
        tree = ast.parse(text, path)
        for node in tree.body:  # module-level definitions
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and FUNCTIONS.get(node.name, path) != path:
                found.append(f"{path}:{node.lineno}: defines {node.name}(), whose home is {FUNCTIONS[node.name]}")
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for name in (t.id for t in targets if isinstance(t, ast.Name)):
                if HOMES.get(name, path) != path:
                    found.append(f"{path}:{node.lineno}: assigns {name}, whose home is {HOMES[name]}")
        for line, value in strings(tree):
            where = f"{path}:{line}: {value[:60]!r}"
            if value in JOURNALS and path != "lab/journal_format.py":
                found.append(f"{where}: a journal's file name; use journal_format.RESEARCH / HUMAN / META")
            if "## (\\d{4}" in value and path != "lab/journal_format.py":
                found.append(f"{where}: the journal heading's pattern; use journal_format.HEADING")
            if re.fullmatch(r"main(\.\.|:|\^).*|main", value, re.S) and path != "lab/names.py":
                found.append(f"{where}: main spelled out; use names.MAIN")
            if value.startswith("exp/") and path != "lab/names.py":
                found.append(f"{where}: the experiment branches' prefix spelled out; use names.EXP")
            if "%H:%M:%SZ" in value and path != "lab/ledger.py":
                found.append(f"{where}: the UTC time format; use ledger.TIME_FORMAT / ledger.utc_now")
            if re.search(r"%Y-%m-%d( %H:%M)?$", value) and path != "lab/journal_format.py":
                found.append(f"{where}: lab's local date or minute format; use journal_format.DAY / STAMP")
            if "Strongest objection" in value:
                found.append(f"{where}: the critic's brief; it lives in .claude/agents/critic.md")
            if re.search(r"--seeds [0-9]|[0-9] seeds of the unmodified", value):
                found.append(f"{where}: a look's seed count; use verdicts.LOOKS")
        for node in ast.walk(tree):
            if dated_heading(node) and path != "lab/journal_format.py":
                found.append(f"{path}:{node.lineno}: writes a journal heading by hand; use journal_format.heading")
            if isinstance(node, ast.Attribute) and node.attr in ("ljust", "rjust") and path != "lab/tables.py":
                found.append(f"{path}:{node.lineno}: pads a column by hand; use tables.aligned")
            if path.startswith("lab/") and isinstance(node, ast.FormattedValue) and node.format_spec is not None \
                    and re.fullmatch(r"[<>^]?[1-9]\d*[sd]?", ast.unparse(node.format_spec)[2:-1]):
                found.append(f"{path}:{node.lineno}: pads a column to a fixed width; use tables.aligned")
            if (isinstance(node, ast.Call) and len(node.args) > 1 and isinstance(node.args[0], ast.Constant)
                    and type(node.args[0].value) is int and any(isinstance(a, ast.Constant) and a.value == "--seeds" for a in node.args)
                    and "verdict" in path):
                found.append(f"{path}:{node.lineno}: a bare seed count for --seeds; use verdicts.LOOKS")
        if path != "lab/commands/ledger_cmd.py" and re.search(r"^\s*(import polars|from polars)", text, re.M):
            found.append(f"{path}: imports polars; lab's ledger tables are plain Python (README, The ledger)")
    return found


def test_no_concept_is_spelled_twice():
    assert copies(sources()) == []


@pytest.mark.parametrize("path, planted, said", [
    ("lab/loop/window.py", 'HEADING = re.compile(rb"^## (\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2})")\n', "assigns HEADING"),
    ("lab/loop/journal.py", 'def entry(when, title):\n    return f"## {when:%Y-%m-%d %H:%M} — {title}"\n', "journal heading by hand"),
    ("lab/guard/meta.py", 'JOURNAL = "human_journal.md"\n', "a journal's file name"),
    ("lab/loop/worktrees.py", 'BASE = "main"\n', "assigns BASE"),
    ("lab/guard/rules.py", 'def f(branch):\n    return branch != "main"\n', "main spelled out"),
    ("lab/runs.py", 'def g():\n    return blobs(["main:train.py"])\n', "main spelled out"),
    ("lab/loop/reports.py", 'def h(slug):\n    return f"exp/{slug}"\n', "experiment branches' prefix"),
    ("lab/jobs.py", 'T = now.strftime("%Y-%m-%dT%H:%M:%SZ")\n', "UTC time format"),
    ("lab/loop/ideas.py", 'def stamp(now):\n    return f"created: {now:%Y-%m-%d %H:%M}"\n', "local date or minute format"),
    ("lab/loop/reports.py", 'def name(now, slug):\n    return f"{now:%Y-%m-%d}_{slug}.md"\n', "local date or minute format"),
    ("lab/queue/queue.py", "def utc_now():\n    pass\n", "defines utc_now()"),
    ("lab/queue/queue.py", '_NUMBER = r"[-+]?\\d+"\n', "assigns _NUMBER"),
    ("lab/loop/ideas.py", 'P = "1. Strongest objection: the single best reason"\n', "critic's brief"),
    ("lab/commands/verdict_cmd.py", 'x = typer.Option(3, "--seeds", help="")\n', "bare seed count"),
    ("lab/commands/verdict_cmd.py", 'm = "(`lab baseline --seeds 3`) before"\n', "a look's seed count"),
    ("lab/commands/idea_cmd.py", 'line = "  ".join(c.ljust(w) for c, w in zip(row, widths))\n', "pads a column by hand"),
    ("lab/commands/status_cmd.py", 'line = f"worktree {slug:24s} ahead {n:3d}"\n', "pads a column to a fixed width"),
    ("lab/commands/queue_cmd.py", 'line = f"{task:>4}  {state}"\n', "pads a column to a fixed width"),
    ("lab/loop/status.py", "import polars as pl\n", "imports polars"),
])
def test_a_planted_copy_is_caught(path, planted, said):
    found = copies({path: (REPO / path).read_text() + "\n" + planted})  # the file alone is clean (the test above)
    assert found and any(said in f for f in found) and all(f.startswith(f"{path}:") for f in found), found


def test_the_critic_brief_is_the_agent_file_body():
    """.claude/agents/critic.md stays a Claude Code subagent (front matter: name, description, tools) whose body,
    less its FROZEN note, is what `lab idea critique` prints before the idea file."""
    text = (REPO / ideas.CRITIC).read_text()
    front, _, body = text.removeprefix("---\n").partition("\n---\n")
    fields = dict(line.split(": ", 1) for line in front.splitlines())
    assert text.startswith("---\n") and fields["name"] == "critic" and fields["description"]
    assert set(fields["tools"].split(", ")) == {"Read", "Grep", "Glob"}  # it only reads
    note, _, brief = body.partition("\n\n")
    assert note.startswith("This file is FROZEN") and ideas.critic_brief() == brief.rstrip("\n")
    assert brief.startswith("You are the critic") and brief.rstrip().endswith("Verdict: run\nVerdict: revise\nVerdict: drop")
