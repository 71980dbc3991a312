"""The names of main, defined once: the baseline's branch and slugs, and the experiment branches' prefix.

Stdlib only and tiny: the guard reads MAIN on every agent tool call.
"""

MAIN = "main"  # the root checkout's branch: the baseline's slug, what worktrees branch from and merges go into
BASELINE_SLUGS = (MAIN, "baseline")  # ledger slugs whose rows are baseline rows
EXP = "exp/"  # an experiment's branch is exp/{slug}; its rows' slug drops the prefix
