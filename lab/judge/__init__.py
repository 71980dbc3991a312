"""Judging runs: statistics, verdicts against the noise floor, the plot and the merge."""
