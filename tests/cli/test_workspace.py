"""The workspace as a newcomer meets it: the tree, the README's promises, the justfile, the `lab` CLI.

Cheap (~2 s, fast set): no training. Run: `just test tests/cli/test_workspace.py`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import REPO, make_workspace, run_env

from lab import ledger, taxonomy

README = (REPO / "README.md").read_text()


def readme_block(after: str) -> str:
    """The first fenced block after the line containing `after`."""
    rest = README.split(after, 1)[1]
    return rest.split("```", 2)[1].split("\n", 1)[1]


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_every_test():
    commands = [line.split("#")[0].strip() for line in readme_block("## Set-up").strip().splitlines()]
    assert commands == ["uv run just eval", "uv run just test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^uv run just test-all$", ci, re.M), ".ci/run must run the whole suite (`just test-all`)"
    assert re.search(r"^uv run lab check$", ci, re.M), ".ci/run must run the guard's layer 3"


def tree_entries() -> list[tuple[str, str]]:
    """(path, class text) for each line of the README's annotated tree; an indented line joins the folder above it."""
    entries, parents = [], [""]  # parents[d]: the folder path a line indented by 2*d spaces is in
    for line in readme_block("## The tree").splitlines():
        names, *rest = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        depth = (len(line) - len(line.lstrip(" "))) // 2
        del parents[depth + 1:]
        for name in names.split(", "):
            entries.append((parents[depth] + name, rest[0] if rest else ""))
            if name.endswith("/"):
                parents[depth + 1:] = [parents[depth] + name]
    return entries


def test_readme_tree_exists_and_agrees_with_the_taxonomy():
    entries = tree_entries()
    assert len(entries) > 25
    for path, classes in entries:
        if path == "README.md":
            continue
        if classes == "ignored":
            probe = path.rstrip("/") + "/probe"
            assert subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO).returncode == 0, f"{path} is not ignored"
            continue
        assert (REPO / path).exists(), f"README lists {path}, which does not exist"
        declared = set(taxonomy.classes_of(path))
        assert {c.strip() for c in classes.split(",")} == declared, f"README says {path} is {classes}, taxonomy.json says {declared}"


def test_every_declared_taxonomy_path_exists():
    for pattern in taxonomy.paths():
        assert (REPO / pattern).exists(), f"lab/taxonomy.json declares {pattern}, which does not exist"


@pytest.mark.parametrize("name", ["eval.py", "prepare.py", "program.md", "AGENTS.md", "justfile", "0_docs/problem.md"])
def test_frozen_files_say_so_in_their_first_lines(name):
    head = "\n".join((REPO / name).read_text().splitlines()[:4])
    assert "FROZEN" in head
    assert "FROZEN" in taxonomy.classes_of(name)


@pytest.mark.parametrize("template, sections", [
    ("1_ideas/_TEMPLATE.md", ["Hypothesis", "Mechanism", "Prediction", "How it could fail", "Critique"]),
    ("9_reports/_TEMPLATE.md", ["Setup", "Results", "Observed vs expected", "Observations", "Inferences", "Next"]),
])
def test_templates_have_the_sections_a_reviewer_needs(template, sections):
    headings = [line.lstrip("#").strip() for line in (REPO / template).read_text().splitlines() if line.startswith("#")]
    for section in sections:
        assert any(h.startswith(section) for h in headings), f"{template} lacks a '{section}' section"


def test_committed_ledger_starts_with_a_schema_header():
    # the current header or an earlier one: a ledger keeps the header it was created with (ledger.EARLIER_WIDTHS)
    committed = subprocess.run(["git", "show", "HEAD:results.tsv"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert committed.split("\n", 1)[0] + "\n" in ledger.HEADERS


def test_just_lists_the_recipes_with_docs(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    out = subprocess.run(["just"], cwd=ws, env=run_env(), capture_output=True, text=True, check=True).stdout
    for recipe in ("smoke", "eval", "prepare", "test", "test-all", "lab"):
        assert re.search(rf"^\s+{recipe}\b.*# \S", out, re.M), f"`just` does not list {recipe} with a doc line"


def test_just_eval_forwards_arguments_intact(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    spy = tmp_path / "spy-python"
    spy.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    spy.chmod(0o755)
    args = ["--budget-s", "20", "--seed", "a b", "$(touch pwned)", "it's", "tab\there", "ünï"]
    out = subprocess.run(["just", "eval", *args], cwd=ws, env=run_env(LAB_PYTHON=str(spy)), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [str(ws / "eval.py"), *args]
    assert not (ws / "pwned").exists()


def test_evals_that_start_together_all_start(tmp_path):
    """Two pueue slots start `just eval` in the same instant; each runs `_setup`, which sets core.hooksPath. One
    of them used to fail on git's lock of .git/config (the first night's queue, before any `just setup`)."""
    ws = make_workspace(tmp_path / "ws")
    subprocess.run(["git", "config", "--unset", "core.hooksPath"], cwd=ws, check=False)
    spy = tmp_path / "spy-python"
    spy.write_text(f"#!{sys.executable}\nimport sys\nprint('eval ran')\n")
    spy.chmod(0o755)
    starts = [subprocess.Popen(["just", "eval", "--seed", str(i)], cwd=ws, env=run_env(LAB_PYTHON=str(spy)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(8)]
    results = [(p.returncode, *out) for p in starts for out in [p.communicate(timeout=60)]]
    assert all(rc == 0 and out == "eval ran\n" for rc, out, _ in results), [err for rc, _, err in results if rc]
    hooks = subprocess.run(["git", "config", "--get", "core.hooksPath"], cwd=ws, capture_output=True, text=True)
    assert hooks.stdout.strip() == str(ws / ".githooks")


def test_just_without_an_environment_says_how_to_make_one(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proc = subprocess.run(["just", "eval"], cwd=ws, env=run_env(LAB_PYTHON=str(tmp_path / "nope")), capture_output=True, text=True)
    assert proc.returncode != 0 and "uv sync" in proc.stderr


def test_lab_ledger_check_names_the_bad_line(tmp_path):
    bad = tmp_path / "results.tsv"
    bad.write_text(ledger.HEADER + "not\ta\trow\n")
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "ledger", "check", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert f"{bad}:2" in proc.stderr and f"has 3 columns, expected {len(ledger.COLUMNS)}" in proc.stderr
    good = tmp_path / "good.tsv"
    good.write_text(ledger.HEADER)
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "ledger", "check", str(good)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "0 valid row(s), 0 problem(s)" in proc.stdout


def program_table() -> list[tuple[str, set[str]]]:
    """(path, classes) for each row of program.md's file table."""
    rows = []
    for line in (REPO / "program.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Z, -]+(\(.*\))?", cells[1]) or cells[1].startswith("---"):
            continue
        classes = {c.strip() for c in re.sub(r"\(.*\)", "", cells[1]).split(",")}
        rows += [(path.strip(), classes) for path in cells[0].split(",")]
    return rows


def test_program_md_table_agrees_with_the_taxonomy():
    rows = program_table()
    assert len(rows) > 20
    for path, classes in rows:
        declared = set(taxonomy.classes_of(path))
        assert classes == declared, f"program.md says {path} is {classes}, taxonomy.json says {declared}"
    listed = {path for path, _ in rows}
    assert set(taxonomy.paths()) <= listed, f"program.md's table lacks {set(taxonomy.paths()) - listed}"
    assert set(taxonomy.paths()) <= {path for path, _ in tree_entries()}, "README's tree lacks a declared path"


def test_lab_taxonomy_prints_the_declaration():
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "taxonomy"], capture_output=True, text=True, cwd=REPO, check=True)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(taxonomy.paths())
    assert any(re.fullmatch(r"meta_journal\.md\s+FROZEN, APPEND-ONLY", line) for line in lines)
