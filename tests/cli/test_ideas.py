"""Tests for lab/loop/ideas.py and `lab idea …` (lab/commands/idea_cmd.py): the idea files of the loop.

What they test, on real files in a throwaway git checkout of this workspace and real `lab idea` processes
(`python -m lab.cli idea`; the refusals in-process through conftest.lab_in_process; no mocks):
  * `new` writes 1_ideas/{date}_{slug}.md from the template with its front matter and heading filled,
    into the ROOT checkout also when run from a worktree;
  * `list` order (status, then rating best first, then slug) and alignment; `show`; the critic prompt;
  * `critique --with CMD` runs a real critic script on the prompt and appends its answer; a failing,
    missing, silent or slow critic writes nothing;
  * `rate` only after a critique, `set_status`, `prediction()`; both change one front-matter line only;
  * bad input (slugs with spaces, '..', '/', look-alike unicode; empty, multi-line, long or duplicate
    titles; near-duplicate slugs; unknown slugs; ratings 0, 6, x; unknown statuses; malformed files):
    one line on stderr, exit code non-zero, and the workspace's files byte-identical.

Cost: about 10 s for 42 tests on a 2-core machine (a throwaway workspace each, and Python start-up of ~15
subprocesses: the refusals run in-process); fast set (no test here is marked slow); needs
`git`, writes only under pytest's tmp_path, needs no GPU and no network.

Run:  just test tests/cli/test_ideas.py
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import git, lab_in_process, make_workspace, run_env

from lab.loop import ideas

TITLE = "Wider MLP (4x -> 6x)"


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def lab(ws: Path, *args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`lab idea ARGS` as a real process in the workspace, importing the workspace's own lab/."""
    return subprocess.run([sys.executable, "-m", "lab.cli", "idea", *args], cwd=cwd or ws,
                          env=run_env(PYTHONPATH=str(ws)), capture_output=True, text=True, timeout=timeout)


def snapshot(ws: Path) -> dict[str, bytes]:
    """Every file of the workspace (but git's, the venv link and bytecode) and its bytes."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(ws):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", ".cache", "__pycache__")]
        for name in filenames:
            path = Path(dirpath, name)
            files[str(path.relative_to(ws))] = path.read_bytes()
    return files


def refused(ws: Path, *args: str, says: str) -> str:
    """Run `lab idea ARGS` (in-process), expect a one-line error containing `says`, and that nothing was written."""
    before = snapshot(ws)
    proc = lab_in_process("idea", *args, cwd=ws)
    assert proc.returncode != 0, proc.stdout
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert says in proc.stderr, proc.stderr
    assert snapshot(ws) == before
    return proc.stderr.strip()


def make(ws: Path, slug: str, title: str) -> ideas.Idea:
    return ideas.new(ws, slug, title)


def critic(tmp_path: Path, body: str, name: str = "critic.py") -> Path:
    """An executable critic script (in a directory whose name has a space, to exercise shlex)."""
    path = tmp_path / "critic dir" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(0o755)
    return path


def front(path: Path) -> dict[str, str]:
    head = path.read_text().split("---\n")[1]
    return {k: v.strip() for k, v in (line.split(":", 1) for line in head.splitlines())}


# ---------------------------------------------------------------------------------------------- new, list, show


def test_new_writes_the_template_with_front_matter_and_heading(ws: Path) -> None:
    proc = lab(ws, "new", "wider-mlp", "--title", TITLE)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.parent == ws / "1_ideas" and re.fullmatch(r"\d{4}-\d\d-\d\d_wider-mlp\.md", path.name)
    fields = front(path)
    assert fields == {"status": "proposed", "rating": "", "created": fields["created"], "slug": "wider-mlp",
                      "title": TITLE}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", fields["created"])
    assert path.name.startswith(fields["created"][:10])
    text, template = path.read_text(), (ws / "1_ideas/_TEMPLATE.md").read_text()
    assert f"\n# {TITLE}\n" in text and "{title}" not in text
    # Below the front matter the file is the template, but for the heading.
    assert text.split("---\n", 2)[2] == template.split("---\n", 2)[2].replace("{title}", TITLE)
    assert "rating:\n" in text
    idea = ideas.find(ws, "wider-mlp")
    assert (idea.slug, idea.title, idea.status, idea.rating, idea.path) == ("wider-mlp", TITLE, "proposed", None, path)
    assert ideas.prediction(idea) == ""


def test_new_uses_the_given_time_and_leaves_no_temp_file(ws: Path) -> None:
    idea = ideas.new(ws, "rope", "Rotary position embeddings", now=datetime(2026, 1, 2, 3, 4))
    assert idea.path == ws / "1_ideas/2026-01-02_rope.md" and idea.created == "2026-01-02 03:04"
    assert sorted(p.name for p in (ws / "1_ideas").iterdir()) == ["2026-01-02_rope.md", "_TEMPLATE.md"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert idea.path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_an_existing_file_is_never_overwritten(ws: Path) -> None:
    target = ws / "1_ideas/taken.md"
    target.write_text("mine\n")
    with pytest.raises(ideas.IdeaError, match="taken.md already exists"):
        ideas._write_new(target, "theirs\n")
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in (ws / "1_ideas").iterdir()) == ["_TEMPLATE.md", "taken.md"]


def test_new_from_a_worktree_writes_to_the_root_checkout(ws: Path) -> None:
    git("worktree", "add", "-q", "5_worktrees/rope", "-b", "exp/rope", "main", cwd=ws)
    tree = ws / "5_worktrees/rope"
    proc = lab(ws, "new", "rope", "--title", "Rotary position embeddings", cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).parent == ws / "1_ideas"
    assert [p.name for p in (tree / "1_ideas").iterdir()] == ["_TEMPLATE.md"]
    assert lab(ws, "list", cwd=tree).stdout.split() == ["proposed", "-", "rope", "Rotary", "position", "embeddings"]


def test_list_orders_by_status_then_rating_then_slug(ws: Path) -> None:
    assert lab(ws, "list").stdout == "no ideas yet (`lab idea new SLUG --title …`)\n"
    plan = [("swiglu", "critiqued", 2), ("rope", "proposed", None), ("muon", "critiqued", 5),
            ("qk-norm", "critiqued", None), ("label-smoothing", "dropped", 1), ("tied-embeddings", "running", 3),
            ("batch-ramp", "done", 4), ("zero-init", "reported", None), ("alibi", "proposed", None)]
    for slug, status, rating in plan:
        make(ws, slug, f"Title of {slug.replace('-', ' ')}")
        if rating is not None:
            ideas.set_status(ws, slug, "critiqued")
            ideas.rate(ws, slug, rating)
        ideas.set_status(ws, slug, status)
    proc = lab(ws, "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["alibi", "rope", "muon", "swiglu", "qk-norm", "tied-embeddings",
                                                  "batch-ramp", "zero-init", "label-smoothing"]
    assert lines[2].split()[:2] == ["critiqued", "5"] and lines[4].split()[:2] == ["critiqued", "-"]
    assert lines[0].endswith("Title of alibi")
    for column in (1, 2, 3):  # aligned: every column starts at the same offset on every line
        starts = {[m.start() for m in re.finditer(r"(?<=  )\S", line)][column - 1] for line in lines}
        assert len(starts) == 1, (column, proc.stdout)


def test_show_prints_the_file(ws: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    proc = lab(ws, "show", "wider-mlp")
    assert proc.returncode == 0 and proc.stdout == idea.path.read_text()


# ---------------------------------------------------------------------------------------------- critique


def test_critique_prints_the_prompt_and_writes_nothing(ws: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    before = snapshot(ws)
    proc = lab(ws, "critique", "wider-mlp")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ideas.critique_prompt(idea)
    assert idea.path.read_text().rstrip("\n") in proc.stdout
    for needle in ("0_docs/problem.md", "Strongest objection", "seed", "fewer steps", "Falsification",
                   "Prediction", "plausible", "Verdict: run\nVerdict: revise\nVerdict: drop", "do not edit"):
        assert needle in proc.stdout, needle
    assert snapshot(ws) == before


def test_critique_with_a_critic_appends_its_answer(ws: Path, tmp_path: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    before, prompt = idea.path.read_text(), ideas.critique_prompt(idea)
    seen = tmp_path / "seen.txt"
    script = critic(tmp_path, f"open({str(seen)!r}, 'w').write(os.getcwd() + '\\n' + sys.stdin.read() + sys.argv[1])\n"
                              "print('Strongest objection: wider is slower per step.\\nVerdict: run')")
    proc = lab(ws, "critique", "wider-mlp", "--with", f"{shlex.quote(str(script))} --tag")
    assert proc.returncode == 0, proc.stderr
    cwd, _, rest = seen.read_text().partition("\n")
    assert Path(cwd) == ws and rest == prompt + "--tag"  # the prompt on stdin, args split
    text = idea.path.read_text()
    assert front(idea.path)["status"] == "critiqued"
    swapped = text.replace("status: critiqued\n", "status: proposed\n", 1)
    assert swapped.startswith(before.rstrip("\n"))
    tail = swapped[len(before.rstrip("\n")):]
    assert re.fullmatch(r"\n\n### Critique \d{4}-\d\d-\d\d \d\d:\d\d\n\nStrongest objection: wider is slower per "
                        r"step\.\nVerdict: run\n", tail), tail
    # A second critique goes below the first; the critic's own headings go below ours.
    second = critic(tmp_path, "print('## Objection\\nSlower.\\nVerdict: drop')", name="second.py")
    assert lab(ws, "critique", "wider-mlp", "--with", shlex.quote(str(second))).returncode == 0
    again = idea.path.read_text()
    assert again.startswith(text) and again.count("### Critique ") == 2
    assert again.endswith("\n##### Objection\nSlower.\nVerdict: drop\n")
    assert ideas.find(ws, "wider-mlp").status == "critiqued"


def test_critique_goes_at_the_end_of_its_section(ws: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    idea.path.write_text(idea.path.read_text() + "\n## Result\nrun_id abc\n")
    ideas.append_critique(ws, "wider-mlp", "Verdict: revise\n")
    text = idea.path.read_text()
    assert re.search(r"-->\n\n### Critique [\d :-]+\n\nVerdict: revise\n\n## Result\nrun_id abc\n$", text), text


@pytest.mark.parametrize("body, says", [
    ("sys.stdin.read(); print('half an answer'); print('boom', file=sys.stderr); sys.exit(3)", "exited with 3 (boom)"),
    ("sys.stdin.read(); print('  ')", "printed nothing"),
    ("time.sleep(600)", "timed out after 1 s"),
])
def test_a_failing_critic_writes_nothing(ws: Path, tmp_path: Path, body: str, says: str) -> None:
    make(ws, "wider-mlp", TITLE)
    start = time.monotonic()
    refused(ws, "critique", "wider-mlp", "--timeout-s", "1", "--with", shlex.quote(str(critic(tmp_path, body))),
            says=says)
    assert time.monotonic() - start < 60  # far below the slow critic's 600 s, far above a loaded machine's start-ups


def test_a_missing_or_unrunnable_critic_writes_nothing(ws: Path, tmp_path: Path) -> None:
    make(ws, "wider-mlp", TITLE)
    refused(ws, "critique", "wider-mlp", "--with", "no-such-critic-xyz -p", says="'no-such-critic-xyz' not found")
    plain = tmp_path / "not-executable"
    plain.write_text("print('hi')\n")
    refused(ws, "critique", "wider-mlp", "--with", str(plain), says="cannot start")
    refused(ws, "critique", "wider-mlp", "--with", "  ", says="--with is blank")
    refused(ws, "critique", "wider-mlp", "--with", "'unclosed", says="quotation")
    with pytest.raises(ideas.IdeaError, match="empty"):
        ideas.append_critique(ws, "wider-mlp", " \n ")


# ------------------------------------------------------------------------------------------ rate, status, prediction


def test_rate_only_after_a_critique_and_only_one_line_changes(ws: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    refused(ws, "rate", "wider-mlp", "4", says="no critique yet: run `lab idea critique wider-mlp` first")
    ideas.append_critique(ws, "wider-mlp", "Verdict: run")
    before = idea.path.read_text()
    for bad in ("0", "6", "x", "2.5", "", "５"):
        refused(ws, "rate", "wider-mlp", bad, says="is not an integer 1-5")
    proc = lab(ws, "rate", "wider-mlp", "4")
    assert proc.returncode == 0, proc.stderr
    assert idea.path.read_text() == before.replace("\nrating:\n", "\nrating: 4\n", 1)
    assert ideas.find(ws, "wider-mlp").rating == 4
    for bad in (0, 6, -1, True, 2.0):
        with pytest.raises(ideas.IdeaError, match="not an integer 1-5"):
            ideas.rate(ws, "wider-mlp", bad)


def test_set_status_changes_one_line(ws: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    before = idea.path.read_bytes()
    for status in ideas.STATUSES:
        assert ideas.set_status(ws, "wider-mlp", status).status == status
        assert idea.path.read_bytes() == before.replace(b"status: proposed\n", f"status: {status}\n".encode(), 1)
    with pytest.raises(ideas.IdeaError, match="'finished' is not one of proposed, critiqued, running, done"):
        ideas.set_status(ws, "wider-mlp", "finished")
    refused(ws, "set-status", "wider-mlp", "finished", says="is not one of")
    assert lab(ws, "set-status", "wider-mlp", "running").returncode == 0
    assert front(idea.path)["status"] == "running"


def test_prediction_is_the_section_without_comments(ws: Path) -> None:
    idea = make(ws, "wider-mlp", TITLE)
    text = idea.path.read_text()
    head, sep, rest = text.partition("## Prediction\n")
    comment, nl, after = rest.partition("\n")
    filled = "val_bpb −0.02 ± 0.01 vs baseline <!-- inline -->\nsteps −10 %\n"
    idea.path.write_text(f"{head}{sep}{comment}\n{filled}\n{after}")
    assert ideas.prediction(idea) == "val_bpb −0.02 ± 0.01 vs baseline \nsteps −10 %"


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("slug, says", [
    ("wider mlp", "no spaces"), ("..", "no spaces"), ("a/b", "no spaces"), ("../evil", "no spaces"),
    ("ｗider", "non-ASCII character 'ｗ'"), ("wid\u0435r", "U+0435"), ("Wider", "lowercase"), ("", "empty"),
    ("x" * 41, "1-40"),
])
def test_new_refuses_a_bad_slug(ws: Path, tmp_path: Path, slug: str, says: str) -> None:
    refused(ws, "new", slug, "--title", "A fine title", says=says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


@pytest.mark.parametrize("title, says", [
    ("", "the title is empty"), ("   ", "the title is empty"), ("two\nlines", "more than one line"),
    ("x" * 101, "101 characters"), ("tab\there", "control characters"),
])
def test_new_refuses_a_bad_title(ws: Path, title: str, says: str) -> None:
    refused(ws, "new", "wider-mlp", "--title", title, says=says)


def test_new_refuses_duplicates_and_near_duplicates(ws: Path) -> None:
    first = make(ws, "wider-mlp", TITLE)
    name = f"1_ideas/{first.path.name}"
    refused(ws, "new", "wider-mlp", "--title", "Another title", says=f"idea 'wider-mlp' exists: {name}")
    refused(ws, "new", "wider-mlps", "--title", "Another title", says=f"'wider-mlp', a near-duplicate of {name}")
    refused(ws, "new", "widermlp", "--title", "Another title", says="but for dashes")
    refused(ws, "new", "mlp-expansion", "--title", "wider MLP: 4x->6x", says=f"close to {TITLE!r}")
    assert lab(ws, "new", "deeper-net", "--title", "Six layers instead of four").returncode == 0
    # Titles with nothing alphanumeric are not all duplicates of each other.
    make(ws, "arrows", "-> <-")
    make(ws, "dashes", "-- --")


@pytest.mark.parametrize("args", [["show", "nope"], ["critique", "nope"], ["rate", "nope", "3"],
                                  ["set-status", "nope", "done"]])
def test_an_unknown_slug_is_one_line(ws: Path, args: list[str]) -> None:
    make(ws, "wider-mlp", TITLE)
    refused(ws, *args, says="no idea with slug 'nope' in 1_ideas/ (see `lab idea list`)")


@pytest.mark.parametrize("head, says", [
    ("status: proposed\nrating:\ncreated: 2026-01-01 10:00\nslug: bad\ntitle: Bad", ":7: front-matter line '# Bad'"),
    ("status: proposed\nrating:\nthis is not a field\n---", ":4: front-matter line 'this is not a field'"),
    ("status: finished\nrating:\ncreated: 2026-01-01 10:00\nslug: bad\ntitle: Bad\n---", ":2: status 'finished'"),
    ("status: critiqued\nrating: 9\ncreated: 2026-01-01 10:00\nslug: bad\ntitle: Bad\n---", ":3: rating '9'"),
    ("status: proposed\nrating:\ncreated: 2026-01-01 10:00\nslug: other\ntitle: Bad\n---", "does not match the file"),
    ("status: proposed\nrating:\ncreated: 2026-01-01 10:00\ntitle: Bad\n---", "no `slug:` line"),
])
def test_a_malformed_file_is_named_with_its_line(ws: Path, head: str, says: str) -> None:
    (ws / "1_ideas/2026-01-01_bad.md").write_text(f"---\n{head}\n# Bad\n")
    message = refused(ws, "list", says="1_ideas/2026-01-01_bad.md:")
    assert says in message
    refused(ws, "new", "fine", "--title", "Fine", says=says)


def test_parameter_sweep_siblings_are_not_near_duplicates(workspace):
    """lr-warmup-100 and lr-warmup-200 differ only in their numbers: a sweep, both allowed; a typo is not."""
    ideas.new(workspace, "lr-warmup-100", "Warm up the learning rate for 100 steps")
    ideas.new(workspace, "lr-warmup-200", "Warm up the learning rate for 200 steps")
    with pytest.raises(ideas.IdeaError, match="close to"):
        ideas.new(workspace, "lr-warmup-20o", "Warm up the learning rate for 200 steps")
