"""Protected mode under attack: a real unprivileged agent user tries to get a row the model did not earn.

Root only (skipped with one reason otherwise; a failure under CI=1). One protected workspace for the module
(tests/protected.py: agent user, grader user, `lab protect`, all removed at the end even on failure), two
honest baseline evals, then 30+ scripted attacks run as the agent user. After each, the mirror is set back to
the grader's ledger. Every attack ends the same way: no row the grader's ledger lacks is verified, and the
installed `lab ledger check` (bin/lab, code the agent cannot edit) exits non-zero naming each forged line,
or, where the attack forged nothing, the attack itself failed and the check passes.

Cost: ~4-5 min on 2 CPU cores (set-up ~15 s, 8 tiny CPU evals of ~30 s, the rest milliseconds to seconds).
Marked slow. Run: `sudo .venv/bin/python -m pytest tests/e2e/test_protect.py` (CI runs as root).
"""

from __future__ import annotations

import base64
import json
import os
import py_compile
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import git
from protected import Protected, require_root

from lab import jobs, ledger
from lab.grader import protect

pytestmark = pytest.mark.slow
FORGED = "0.123456"  # a val_bpb no tiny model here earns (they score ~8)


@pytest.fixture(scope="module")
def P(corpus):
    require_root()
    p = Protected(corpus)
    safe = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
    os.environ.update(safe)  # this process (root) reads the agent's repository too; restored below
    try:
        p.up()
        for seed in (0, 1):  # the second as if from pueue slot 0 of a GPU box: sudo clears the variable, eval passes it
            proc = p.as_agent("just", "eval", "--max-steps", "2", "--seed", str(seed), **({"CUDA_VISIBLE_DEVICES": "0"} if seed else {}))
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
            assert ("grade | CUDA_VISIBLE_DEVICES=0 (the caller's)" in proc.stderr) == bool(seed), proc.stderr[-3000:]
        # no --budget-s: the grader gives the device it resolved its default budget
        assert [(r["device"], r["budget_s"]) for r in ledger.read(p.cfg.ledger)[0]] == [("cpu", "60.0")] * 2
        yield p
    finally:
        p.teardown()
        for key in safe:
            os.environ.pop(key, None)


@pytest.fixture(autouse=True)
def clean_mirror(P):
    """Each attack starts from a mirror equal to the grader's ledger, and leaves the workspace as it was."""
    restore(P)
    head = git("rev-parse", "HEAD", cwd=P.ws).strip()
    yield
    git("-c", f"safe.directory={P.ws}", "checkout", "-qf", "main", cwd=P.ws)
    git("-c", f"safe.directory={P.ws}", "reset", "-q", "--hard", head, cwd=P.ws)
    restore(P)


def restore(P: Protected) -> None:
    shutil.copyfile(P.cfg.ledger, P.ws / "results.tsv")
    P.chown()


def mirror_lines(P: Protected) -> list[str]:
    return (P.ws / "results.tsv").read_text().splitlines(keepends=True)


def forged_line(P: Protected, run_id: str = "forged-1") -> str:
    """A real signed line with another run id and a better val_bpb: its signature no longer verifies."""
    cells = mirror_lines(P)[-1].rstrip("\n").split("\t")
    cells[ledger.COLUMNS.index("run_id")] = run_id
    cells[ledger.COLUMNS.index("val_bpb")] = FORGED
    return "\t".join(cells) + "\n"


def installed_check(P: Protected) -> subprocess.CompletedProcess:
    return P.as_agent(f"{P.cfg.install}/bin/lab", "ledger", "check")


def assert_caught(P: Protected, lines: list[int], words: tuple[str, ...] = ()) -> str:
    """No forged row is verified, and the installed check fails naming each of `lines` (and `words`)."""
    rows, _ = ledger.read(P.ws / "results.tsv")
    kept, _ = protect.verified(P.ws, rows)
    theirs = protect.authoritative(P.cfg)
    assert all(theirs[r["run_id"]] == r for r in kept) and all(r["val_bpb"] != FORGED for r in kept)
    proc = installed_check(P)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said
    for n in lines:
        assert f"results.tsv:{n}:" in said, (n, said)
    for w in words:
        assert w in said, (w, said)
    return said


def assert_clean(P: Protected) -> None:
    proc = installed_check(P)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def agent_eval(P: Protected, *args: str, cwd: Path | None = None, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`just eval --max-steps 2` as the agent; (process, the newest row of the grader's ledger)."""
    proc = P.as_agent("just", "eval", "--max-steps", "2", *args, cwd=cwd, **env)
    return proc, ledger.read(P.cfg.ledger)[0][-1]


def smoke_pass(P: Protected, where: Path) -> None:
    """Record the smoke pass an experiment's eval asks for (the guidance gate; what is under attack is the grader)."""
    jobs.record_smoke(P.ws, jobs.content_key(where), jobs.file_sha(P.ws / "eval.py"), jobs.file_sha(where / "train.py"),
                      git("-c", "safe.directory=*", "rev-parse", "HEAD", cwd=where).strip(), 0.0)
    P.chown()


# ------------------------------------------------------------------------------------- forged rows, every writer

WRITERS = {
    "python": "python3 -c \"import os; open('results.tsv', 'a').write(os.environ['L'])\"",
    "quoted-name": "printf '%s' \"$L\" >> \"result\"'s'.tsv",
    "base64-sh": None,  # filled in below: the command arrives base64-encoded
    "perl": "perl -e 'open(F, \">>results.tsv\"); print F $ENV{L}'",
    "node": "node -e \"require('fs').appendFileSync('results.tsv', process.env.L)\"",
    "sqlite3": None,
    "awk": "awk 'BEGIN { printf \"%s\", ENVIRON[\"L\"] >> \"results.tsv\" }'",
    "tee": "printf '%s' \"$L\" | tee -a results.tsv > /dev/null",
    "dd": "printf '%s' \"$L\" | dd of=results.tsv oflag=append conv=notrunc status=none",
    "lab-ledger": "python -c \"import os; from lab import ledger; "
                  "ledger.append(ledger.parse_line(os.environ['L'].rstrip()), 'results.tsv')\"",
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_forged_row_appended_by_any_writer_is_named(P, writer):
    line = forged_line(P)
    script = WRITERS[writer]
    if writer == "base64-sh":
        script = f"echo {base64.b64encode(WRITERS['python'].encode()).decode()} | base64 -d | sh"
    if writer == "sqlite3":
        script = f"sqlite3 :memory: \"select writefile('results.tsv', readfile('results.tsv') || X'{line.encode().hex()}')\" >/dev/null"
    proc = P.sh(script, L=line)
    assert proc.returncode == 0, proc.stderr
    n = len(mirror_lines(P))
    assert mirror_lines(P)[-1] == line
    assert_caught(P, [n], ("signature does not verify", "extra, not in the grader's ledger"))


def test_a_forged_row_through_git_apply_and_commit_is_named(P):
    old = (P.ws / "results.tsv").read_text()
    patched = P.base / "forged.tsv"
    patched.write_text(old + forged_line(P))
    diff = subprocess.run(["git", "diff", "--no-index", "--", str(P.ws / "results.tsv"), str(patched)], capture_output=True,
                          text=True).stdout
    diff = diff.replace(str(P.ws / "results.tsv")[1:], "results.tsv").replace(str(patched)[1:], "results.tsv")
    (P.base / "forged.patch").write_text(diff)
    proc = P.sh(f"git apply {P.base}/forged.patch && git add results.tsv && git commit -q --no-verify -m rows")
    assert proc.returncode == 0, proc.stderr
    assert_caught(P, [len(mirror_lines(P))])


def test_a_forged_row_through_commit_tree_and_update_ref_is_named(P):
    proc = P.sh("printf '%s' \"$L\" >> results.tsv && git add results.tsv && tree=$(git write-tree) && "
                "c=$(git commit-tree $tree -p HEAD -m rows) && git update-ref refs/heads/main $c", L=forged_line(P))
    assert proc.returncode == 0, proc.stderr
    assert_caught(P, [len(mirror_lines(P))])


def test_a_forged_row_through_a_fast_forward_merge_is_named(P):
    proc = P.sh("git checkout -q -b forge && printf '%s' \"$L\" >> results.tsv && git commit -q --no-verify -am rows && "
                "git checkout -q main && git merge -q --ff-only forge", L=forged_line(P))
    assert proc.returncode == 0, proc.stderr
    assert_caught(P, [len(mirror_lines(P))])


# ------------------------------------------------------------------------------------- old rows and the mirror


def test_editing_an_old_row_is_named(P):
    proc = P.sh(f"sed -i '2s/\\t{mirror_lines(P)[1].split(chr(9))[8]}\\t/\\t{FORGED}\\t/' results.tsv")
    assert proc.returncode == 0 and FORGED in mirror_lines(P)[1], proc.stderr
    assert_caught(P, [2], ("edited",))


def test_deleting_an_old_row_is_named(P):
    gone = mirror_lines(P)[1].split("\t")[0]
    assert P.sh("sed -i 2d results.tsv").returncode == 0
    assert_caught(P, [], (f"run {gone}: missing",))


def test_reordering_rows_is_named(P):
    assert P.sh("{ sed -n 1p results.tsv; sed -n 3p results.tsv; sed -n 2p results.tsv; } > r && mv r results.tsv").returncode == 0
    assert_caught(P, [3], ("reordered",))


def test_replacing_the_mirror_is_named(P):
    fake = ledger.HEADER + forged_line(P, "forged-a") + forged_line(P, "forged-b")
    (P.base / "fake.tsv").write_text(fake)
    assert P.sh(f"cp {P.base}/fake.tsv results.tsv").returncode == 0
    assert_caught(P, [2, 3], ("missing",))


def test_a_copied_signed_row_counts_once_and_is_named(P):
    assert P.sh("sed -n 2p results.tsv >> results.tsv").returncode == 0
    rows, _ = ledger.read(P.ws / "results.tsv")
    kept, note = protect.verified(P.ws, rows)
    assert len(kept) == len(rows) - 1 and "1 row(s)" in note
    assert_caught(P, [len(mirror_lines(P))], ("second line",))


# ------------------------------------------------------------------------------------- the grader's secrets and files


@pytest.mark.parametrize("what", ["private-key", "test-split", "val-split", "test-scores"])
def test_the_agent_cannot_read_the_graders_secrets(P, what):
    path = {"private-key": Path(P.cfg.state) / "private" / "grader.key",
            "test-split": Path(P.cfg.data_dir) / "test.bin", "val-split": Path(P.cfg.data_dir) / "val.bin",
            "test-scores": Path(P.cfg.state) / "private" / "test.tsv"}[what]
    assert path.is_file()
    proc = P.sh(f"cat {path} || python3 -c 'open(\"{path}\").read()'")
    assert proc.returncode != 0 and "Permission denied" in proc.stderr and proc.stdout == ""
    reveal = P.lab("reveal", "main")
    assert reveal.returncode != 0 and "sudo lab reveal" in reveal.stderr
    assert_clean(P)


@pytest.mark.parametrize("what", ["grader-ledger", "installed-eval", "grade-wrapper", "config"])
def test_the_agent_cannot_write_the_graders_files(P, what):
    path = {"grader-ledger": P.cfg.ledger, "installed-eval": Path(P.cfg.install) / "src" / "eval.py",
            "grade-wrapper": Path(P.cfg.grade), "config": protect.config_path(P.ws)}[what]
    before = path.read_bytes()
    proc = P.sh(f"printf '%s' \"$L\" >> {path}", L=forged_line(P))
    assert proc.returncode != 0 and path.read_bytes() == before
    assert_clean(P)


# ------------------------------------------------------------------------------------- sudo


def grade_args(P: Protected, run_id: str) -> list[str]:
    commit = git("rev-parse", "HEAD", cwd=P.ws).strip()
    return ["--commit", commit, "--branch", "main", "--run-id", run_id, "--seed", "9", "--budget-s", "5", "--max-steps", "1"]


@pytest.mark.parametrize("how", ["extra-argument", "config-argument", "reused-run-id", "unknown-commit", "visible-gpus"])
def test_the_grader_takes_only_validated_arguments(P, how):
    args = grade_args(P, "sudo-args")
    args = {"extra-argument": args + ["--unsandboxed"], "config-argument": args + ["--config", "/tmp/evil.json"],
            "reused-run-id": grade_args(P, mirror_lines(P)[1].split("\t")[0]),
            "unknown-commit": ["--commit", "0" * 40, *args[2:]], "visible-gpus": args + ["--visible-gpus", "0 $(id)"]}[how]
    before = P.cfg.ledger.read_bytes()
    proc = P.as_agent("sudo", "-n", "-u", P.grader, P.cfg.grade, *args)
    assert proc.returncode == 2 and "error" in json.loads(proc.stdout), proc.stdout + proc.stderr
    assert P.cfg.ledger.read_bytes() == before
    assert_clean(P)


@pytest.mark.parametrize("how", ["PYTHONPATH", "LD_PRELOAD", "keep-env", "shell", "python", "as-root"])
def test_sudo_runs_the_grader_only_and_without_the_callers_environment(P, how):
    evil = P.base / "evil"
    evil.mkdir(exist_ok=True)
    (evil / "sitecustomize.py").write_text("open('/tmp/lab-protect-pwned', 'w').write('x')\n")
    cmd = {"PYTHONPATH": ["sudo", "-n", "-u", P.grader, f"PYTHONPATH={evil}", P.cfg.grade],
           "LD_PRELOAD": ["sudo", "-n", "-u", P.grader, f"LD_PRELOAD={evil}/x.so", P.cfg.grade],
           "keep-env": ["sudo", "-n", "-E", "-u", P.grader, P.cfg.grade],
           "shell": ["sudo", "-n", "-u", P.grader, "/bin/sh", "-c", "cat /var/lib/lab-grader/*/private/grader.key"],
           "python": ["sudo", "-n", "-u", P.grader, f"{P.cfg.install}/venv/bin/python", "-c", "print(1)"],
           "as-root": ["sudo", "-n", P.cfg.grade]}[how]
    before = P.cfg.ledger.read_bytes()
    proc = P.as_agent(*cmd, *grade_args(P, f"sudo-{how.lower()}"), PYTHONPATH=str(evil))
    assert proc.returncode != 0 and "sudo" in proc.stderr, proc.stdout + proc.stderr
    assert P.cfg.ledger.read_bytes() == before and not Path("/tmp/lab-protect-pwned").exists()
    assert_clean(P)


def test_the_agent_cannot_protect_update_or_unprotect(P):
    for args in (["protect", "--update"], ["unprotect"]):
        proc = P.lab(*args)
        assert proc.returncode == 2 and "root" in proc.stderr, proc.stderr
        proc = P.as_agent("sudo", "-n", str(P.venv / "bin" / "python"), "-m", "lab.cli", *args)
        assert proc.returncode != 0 and "password is required" in proc.stderr, proc.stderr
    assert protect.config(P.ws).commit == P.cfg.commit
    assert_clean(P)


# ------------------------------------------------------------------------------------- tampering, then evaluating


def test_an_eval_py_edited_to_skip_the_grader_writes_only_unsigned_rows(P):
    text = (P.ws / "eval.py").read_text()
    old = "            return protected_eval(grader, args, row), marks\n"
    assert old in text
    forged = f"            return {{**row, 'status': 'ok', 'reason': '', 'val_bpb': {FORGED}}}, marks\n"
    (P.ws / "eval.py").write_text(text.replace(old, forged))
    P.chown()
    proc = P.as_agent("just", "eval", "--max-steps", "2", "--seed", "5")
    assert proc.returncode == 0 and f"val_bpb:     {FORGED}" in proc.stdout, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert_caught(P, [len(mirror_lines(P))], ("signature does not verify",))


def test_a_lab_edited_to_lie_fools_only_its_own_check(P):
    path = P.ws / "lab" / "grader" / "protect.py"
    text = path.read_text()
    path.write_text(text.replace("    problems = []\n    data = mirror.read_bytes()", "    return []\n    data = b''")
                    .replace('    kept = [r for r in rows if theirs.pop(r["run_id"], None) == r]', "    kept = rows"))
    P.sh("printf '%s' \"$L\" >> results.tsv", L=forged_line(P))
    P.chown()
    assert P.lab("ledger", "check").returncode == 0  # the repository's copy is the agent's to edit
    assert_caught(P, [len(mirror_lines(P))])  # the installed one is not


def test_a_sitecustomize_on_pythonpath_reaches_only_the_caller(P):
    evil = P.base / "site"
    evil.mkdir(exist_ok=True)
    (evil / "sitecustomize.py").write_text(  # eval.py, as the caller, hands back a row the grader never wrote
        f"import sys; sys.path.insert(0, {str(P.ws)!r})\n"
        "import lab.grader.protect as p\n"
        "from lab import ledger\n"
        "def grade(cfg, argv):\n"
        "    row = dict(ledger.read('results.tsv')[0][-1])\n"
        f"    row.update(run_id=argv[argv.index('--run-id') + 1], val_bpb='{FORGED}')\n"
        "    return row\n"
        "p.grade = grade\n")
    os.chmod(evil, 0o755)
    proc = P.as_agent("just", "eval", "--max-steps", "2", "--seed", "6", PYTHONPATH=str(evil), BASH_ENV=str(evil / "x.sh"))
    assert FORGED in mirror_lines(P)[-1], proc.stdout[-1500:] + proc.stderr[-1500:]
    assert_caught(P, [len(mirror_lines(P))])


def test_a_poisoned_pycache_changes_nothing_the_installed_check_says(P):
    fake = P.base / "protect_fake.py"
    fake.write_text((P.ws / "lab" / "grader" / "protect.py").read_text().replace(
        '    kept = [r for r in rows if theirs.pop(r["run_id"], None) == r]', "    kept = rows"))
    target = P.ws / "lab" / "grader" / "__pycache__" / "protect.cpython-311.pyc"
    target.parent.mkdir(exist_ok=True)
    py_compile.compile(str(fake), cfile=str(target), dfile=str(P.ws / "lab" / "grader" / "protect.py"),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    P.sh("printf '%s' \"$L\" >> results.tsv", L=forged_line(P))
    P.chown()
    assert git("status", "--porcelain", cwd=P.ws).strip() == "M results.tsv"  # ignored: git shows nothing else
    try:
        assert_caught(P, [len(mirror_lines(P))])
    finally:
        shutil.rmtree(target.parent)


def test_editing_frozen_files_in_a_worktree_then_evaluating_grades_honestly(P):
    tree = P.ws / "5_worktrees" / "wt-frozen"
    proc = P.sh(f"git worktree add -q -b exp/wt-frozen {tree} && cd {tree} && "
                f"sed -i 's/^PROBES = 3/PROBES = 0/' eval.py && sed -i 's/lr=2e-3, warmup_steps=30/lr=1e-3, warmup_steps=30/' train.py && "
                "git commit -q --no-verify -am 'frozen edits'")
    assert proc.returncode == 0, proc.stderr
    smoke_pass(P, tree)
    proc, row = agent_eval(P, cwd=tree)
    try:
        assert row["slug"] == "wt-frozen", proc.stdout[-1500:] + proc.stderr[-2000:]
        assert row["status"] == "ok" and 1.0 < float(row["val_bpb"]) < 9.0
        assert row["eval_sha"] == jobs.file_sha(Path(P.cfg.install) / "src" / "eval.py")
        assert_clean(P)
    finally:
        git("-c", "safe.directory=*", "worktree", "remove", "--force", str(tree), cwd=P.ws)


def test_git_replace_filters_fsmonitor_and_fake_tools_on_path_reach_nothing_of_the_grader(P):
    marker = P.base / "ran"
    marker.mkdir(exist_ok=True)
    os.chmod(marker, 0o777)
    spy = f"sh -c 'id -un > {marker}/\\$(id -un).\\$\\$; cat'"
    fake_bin = P.base / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    for tool in ("git", "sudo", "python", "python3"):
        real = shutil.which(tool, path="/usr/bin:/bin") or "/bin/false"
        (fake_bin / tool).write_text(f"#!/bin/sh\nid -un > {marker}/fake-{tool}.$$\nexec {real} \"$@\"\n")
        os.chmod(fake_bin / tool, 0o755)
    evil = (P.ws / "train.py").read_text().replace("def train(cfg: Config) -> None:\n",
                                                   "def train(cfg: Config) -> None:\n    print('REPLACED-TRAIN-RAN')\n")
    (P.base / "evil_train.py").write_text(evil)
    proc = P.sh(f"git checkout -q -b exp/sneaky && sed -i 's/lr=2e-3, warmup_steps=30/lr=1.5e-3, warmup_steps=30/' train.py && "
                f"git commit -q --no-verify -am sneaky && "
                f"git replace $(git rev-parse HEAD:train.py) $(git hash-object -w {P.base}/evil_train.py) && "
                f"git config filter.spy.smudge \"{spy}\" && git config filter.spy.clean \"{spy}\" && "
                f"echo '* filter=spy' > .git/info/attributes && git config core.fsmonitor \"{spy}\"")
    assert proc.returncode == 0, proc.stderr
    smoke_pass(P, P.ws)
    honest = jobs.short_sha(git("-c", "safe.directory=*", "--no-replace-objects", "show", "HEAD:train.py", cwd=P.ws).encode())
    proc, row = agent_eval(P, PATH=f"{fake_bin}:{P.venv}/bin:/usr/bin:/bin")
    ran = sorted(p.name.split(".")[0] for p in marker.iterdir())
    assert row["slug"] == "sneaky" and row["status"] == "ok", proc.stdout[-1500:] + proc.stderr[-2000:]
    assert row["train_sha"] == honest and "REPLACED-TRAIN-RAN" not in proc.stdout + proc.stderr
    try:
        assert P.grader not in ran and not any(p.startswith("fake-sudo") for p in ran), ran  # nothing ran as the grader
        assert_clean(P)
    finally:
        P.sh("git replace -d $(git replace -l); git config --unset filter.spy.smudge; git config --unset filter.spy.clean; "
             "git config --unset core.fsmonitor; rm -f .git/info/attributes")


def test_self_unlocked_meta_mode_and_frozen_commits_do_not_change_the_grader(P):
    journal = P.ws / "human_journal.md"
    lines = journal.read_text().splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.startswith("## 20")), len(lines))
    unlocked = "".join(lines[:first]) + "## 2026-12-01 00:01 — unlock\nMETA_MODE=1\n\n" + "".join(lines[first:])
    (P.base / "unlocked.md").write_text(unlocked)
    diff = subprocess.run(["git", "diff", "--no-index", "--", str(journal), str(P.base / "unlocked.md")],
                          capture_output=True, text=True).stdout
    diff = diff.replace(str(journal)[1:], "human_journal.md").replace(str(P.base / "unlocked.md")[1:], "human_journal.md")
    (P.base / "unlock.patch").write_text(diff)
    proc = P.sh(f"git apply {P.base}/unlock.patch && sed -i 's/^PROBES = 3/PROBES = 0/' eval.py && "
                "sed -i 's/VAL_PERCENT = /VAL_PERCENT = 1 + /' prepare.py && git commit -q --no-verify -am 'meta: unlocked'")
    assert proc.returncode == 0, proc.stderr
    proc, row = agent_eval(P, "--seed", "7")
    assert row["seed"] == "7" and row["status"] == "ok", proc.stdout[-1500:] + proc.stderr[-2000:]
    src = Path(P.cfg.install) / "src"
    assert (row["eval_sha"], row["prepare_sha"]) == (jobs.file_sha(src / "eval.py"), jobs.file_sha(src / "prepare.py"))
    assert row["grader_sha"] == P.cfg.commit and row["eval_sha"] != jobs.file_sha(P.ws / "eval.py")
    assert_clean(P)


def test_protect_update_refuses_frozen_changes_without_a_meta_journal_entry(P):
    git("-c", f"safe.directory={P.ws}", "commit", "-q", "--no-verify", "--allow-empty", "-m", "x", cwd=P.ws)
    (P.ws / "eval.py").write_text((P.ws / "eval.py").read_text().replace("PROBES = 3", "PROBES = 4"))
    git("-c", f"safe.directory={P.ws}", "commit", "-q", "--no-verify", "-am", "eval: one more probe", cwd=P.ws)
    proc = subprocess.run([P.venv / "bin" / "python", "-m", "lab.cli", "protect", "--update"], cwd=P.ws,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "eval.py" in proc.stderr and "meta_journal.md" in proc.stderr, proc.stderr
    assert protect.config(P.ws).commit == P.cfg.commit
    with open(P.ws / "meta_journal.md", "a") as f:
        f.write("\n## 2026-12-01 12:00 — eval: one more probe\nWhy: a test of protect --update.\n")
    git("-c", f"safe.directory={P.ws}", "commit", "-q", "--no-verify", "-am", "meta: why", cwd=P.ws)
    proc = subprocess.run([P.venv / "bin" / "python", "-m", "lab.cli", "protect", "--update"], cwd=P.ws,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "updated" in proc.stdout, proc.stderr
    assert "PROBES = 4" in (Path(P.cfg.install) / "src" / "eval.py").read_text()
    P.cfg = protect.config(P.ws)


def test_the_human_sees_the_held_out_test_split_with_sudo_lab_reveal(P):
    table = P.lab_root("reveal", "main").stdout.splitlines()
    assert table[0].split() == ["run_id", "slug", "seed", "val_bpb", "test_bpb"]
    runs = {line.split()[0]: line.split() for line in table[1:]}
    for row in ledger.read(P.cfg.ledger)[0]:
        if row["slug"] == "main" and row["status"] == "ok":
            assert runs[row["run_id"]][3] == row["val_bpb"] and 1.0 < float(runs[row["run_id"]][4]) < 9.0
    assert "test_bpb" not in ledger.HEADER and all("test" not in c for c in ledger.COLUMNS)
