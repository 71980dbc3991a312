"""`lab overnight`: run the agent in cycles until a stop rule fires; `--summary` writes the morning summary now."""

from __future__ import annotations

import signal

import typer

from lab import gitx
from lab.commands.common import fail, root
from lab.loop import overnight as core


def overnight(
    agent: str = typer.Option(None, "--agent", help="The agent command, run through the shell with the cycle's prompt "
                              f"on stdin; presets: {', '.join(f'{k} = `{v}`' for k, v in core.PRESETS.items())}."),
    until: str = typer.Option(None, "--until", help="Deadline, local time HH:MM (the next such time)."),
    hours: float = typer.Option(None, "--hours", help="Deadline, hours from now (instead of --until)."),
    max_cycles: int = typer.Option(None, "--max-cycles", help="Stop after this many agent cycles (waits do not count)."),
    stuck: int = typer.Option(3, "--stuck", help="Stop after K agent cycles in a row that added no row, queued run, commit, "
                              "idea, report or journal entry (0: never)."),
    failures: int = typer.Option(3, "--failures", help="Stop when the night's last K rows are crash/invalid (0: never)."),
    gpu_hours: float = typer.Option(None, "--gpu-hours", help="Stop once the night's runs used this many hours of wall "
                                    "time (each run holds one GPU slot for its wall time)."),
    backoff_s: float = typer.Option(30.0, "--backoff-s", help="First restart delay after an agent crash (doubles, up to "
                                    "15 min)."),
    limit_backoff_s: float = typer.Option(900.0, "--limit-backoff-s", help="Delay after a usage limit the CLI reports "
                                          "(doubles, up to 4x)."),
    poll_s: float = typer.Option(60.0, "--poll-s", help="How often a wait or pause re-checks STOP and the deadline."),
    summary: bool = typer.Option(False, "--summary", help="Write the newest night's morning summary now and exit."),
) -> None:
    """Keep the research loop going overnight with no person; stop for a documented reason; leave a summary."""
    where = root("lab overnight")
    if summary:
        try:
            path = core.write_summary(where, core.load(where))
        except (ValueError, gitx.GitError) as e:
            fail(f"lab overnight: {e}")
        typer.echo(f"wrote {path.relative_to(where)}")
        return
    if not agent:
        fail("lab overnight: --agent is required: a preset (claude, codex) or a shell command that reads its prompt on stdin")
    for name, value in (("--max-cycles", max_cycles), ("--stuck", stuck), ("--failures", failures)):
        if value is not None and value < 0:
            fail(f"lab overnight: {name} {value}: give a whole number ≥ 0")
    if gpu_hours is not None and gpu_hours <= 0:
        fail(f"lab overnight: --gpu-hours {gpu_hours}: give a positive number of hours")
    try:
        cfg = core.Config(agent=core.expand(agent), deadline=core.deadline_of(until, hours), max_cycles=max_cycles,
                          stuck=stuck, failures=failures, gpu_hours=gpu_hours, backoff_s=backoff_s,
                          backoff_max_s=max(backoff_s, 900.0), limit_backoff_s=limit_backoff_s, poll_s=poll_s)
    except ValueError as e:  # refused before the night touches anything, its signal handler included
        fail(f"lab overnight: {e}")
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` ends the night as Ctrl-C does: reason, journal, summary
    try:
        night = core.drive(where, cfg, say=typer.echo)
    except (ValueError, gitx.GitError) as e:
        fail(f"lab overnight: {e}")
    raise typer.Exit(0 if night.summary else 1)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
