"""The research loop: ideas, worktrees, the journal, reports, status/next/digest and the overnight driver."""
