"""Layer 2 of the guard: check the staged change before a commit (run by .githooks/pre-commit)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script with `python -I -S lab/guard/precommit.py`
    sys.path.append(str(Path(__file__).resolve().parents[2]))  # last: a json.py at the root shadows no standard module

from lab import gitx
from lab.guard import meta, rules


def main() -> int:
    cwd = Path.cwd()  # git runs hooks at the top of the checkout being committed
    try:
        root, branch = gitx.root_checkout(cwd), gitx.branch(cwd)
        changes = [rules.Change(*c) for c in gitx.staged_changes(cwd)]
    except gitx.GitError as e:
        print(f"lab pre-commit: {e}; commit refused", file=sys.stderr)
        return 1
    state = meta.status(root)
    violations = rules.check(changes, branch=branch, meta_on=state.on)
    if not violations:
        return 0
    print(f"lab pre-commit: commit refused on branch {branch} ({len(violations)} problem(s)):", file=sys.stderr)
    for v in violations:
        print(f"- [{v.rule}] {v.message}", file=sys.stderr)
    print(f"META_MODE {state.reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
