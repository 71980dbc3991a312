"""`lab merge`: a kept experiment joins main, with its evidence in the merge commit and a baseline tag.

The human's act (or meta mode's): the agent proposes a merge in its report, it never merges.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

from lab import gitx, jobs, journal_format, ledger, names, runs
from lab.grader import protect
from lab.guard import history, meta
from lab.judge import verdicts
from lab.loop import worktrees


class MergeError(RuntimeError):
    """The merge was refused or failed; main is as it was. The message says why and what to do."""


def evidence(v: verdicts.Verdict) -> str:
    """The merge commit's message: the verdict's numbers and every run id behind them."""
    return (f"merge exp/{v.slug}: keep, val_bpb {v.diff:+.4f} vs baseline "
            f"(95% CI [{v.lo:+.4f}, {v.hi:+.4f}], one-sided p {v.p_better:.2g}, {v.n_exp} vs {v.n_base} seeds)\n\n"
            f"{v.reason}\n\nruns: {' '.join(v.run_ids)}\n")


def merge(root: Path, slug: str, min_effect: float = 0.0, now: datetime | None = None) -> tuple[str, str, str]:
    """Merge exp/SLUG into main if its verdict is keep and its commits pass the rules: (commit, tag, message)."""
    root = Path(root)
    state = meta.status(root)
    if not state.on:
        raise MergeError(f"merging into main is the human's call: say \"propose merge of exp/{slug}\" in its report "
                         f"and the journal (`lab status` lists proposed merges) and go on")
    if gitx.branch(root) != names.MAIN:
        raise MergeError(f"the root checkout is on {gitx.branch(root)!r}: `git switch {names.MAIN}` there first")
    loose = jobs.unclean(root)
    if loose:
        raise MergeError(f"the root checkout has uncommitted changes ({', '.join(loose[:5])}): commit or stash them first")
    branch = worktrees.branch_of(slug)
    if not gitx.git("branch", "--list", branch, cwd=root):
        raise MergeError(f"no branch {branch}: `lab worktrees` lists the experiments")
    rows, _ = ledger.read(ledger.ledger_path(root))
    rows, _ = protect.verified(root, rows)
    v = verdicts.verdict(rows, slug, min_effect=min_effect, train_sha=runs.main_train_sha(root))
    if v.kind != "keep":
        raise MergeError(f"the verdict for {slug} is {v.kind}, and only a keep merges: {v.reason}")
    commits, problems = history.problems_in(root, f"{names.MAIN}..{branch}", branch)
    if problems:
        raise MergeError(f"`lab check {names.MAIN}..{branch}` finds {len(problems)} problem(s), e.g. {problems[0]}")
    if not commits:
        raise MergeError(f"{branch} has no commits that {names.MAIN} lacks: nothing to merge")
    message = evidence(v)
    done = subprocess.run(["git", "merge", "--no-ff", "-m", message, branch], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["git", "merge", "--abort"], cwd=root, capture_output=True)
        said = " ".join((done.stderr or done.stdout).split())
        raise MergeError(f"`git merge {branch}` failed and was aborted, main is unchanged: {said}")
    commit = gitx.head_commit(root)
    tag = f"baseline/{(now or datetime.now()):{journal_format.DAY}}-{slug}"
    gitx.git("tag", "-a", tag, "-m", message, commit, cwd=root)
    return commit, tag, message
