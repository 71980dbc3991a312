"""The guard's rules over committed history: what `lab check` and `lab merge` run on a commit range."""

from __future__ import annotations

from pathlib import Path

from lab import gitx, journal_format
from lab.guard import rules


def problems_in(cwd: Path, rev_range: str, branch: str) -> tuple[list[str], list[str]]:
    """(commits in `rev_range`, one line per rule a commit breaks, as made on `branch`)."""
    commits = gitx.git("rev-list", "--reverse", rev_range, cwd=cwd).split()
    problems = []
    for commit in commits:
        changes = [rules.Change(*c) for c in gitx.commit_changes(commit, cwd)]
        # History keeps no record of meta mode; its evidence is the meta_journal entry the commit adds.
        evidence = any(c.path == journal_format.META and rules.journal_problem(c.old, c.new) is None for c in changes)
        subject = gitx.git("log", "-1", "--format=%h %s", commit, cwd=cwd)
        problems += [f"{subject}: [{v.rule}] {v.message}" for v in rules.check(changes, branch=branch, meta_on=evidence)]
    return commits, problems
