"""The `lab` command: composes one small typer app per command group."""

import typer

from lab.commands import (guard_cmd, idea_cmd, journal_cmd, ledger_cmd, overnight_cmd, protect_cmd, queue_cmd,
                          report_cmd, status_cmd, verdict_cmd, worktree_cmd)

app = typer.Typer(help="lab — the research workspace's tooling. See program.md for the loop.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(idea_cmd.app, name="idea")
app.command("start")(worktree_cmd.start)
app.command("worktrees")(worktree_cmd.worktrees)
app.command("finish")(worktree_cmd.finish)
app.add_typer(journal_cmd.app, name="journal")
app.command("report")(report_cmd.report)
app.add_typer(queue_cmd.app, name="queue")
app.command("wait")(queue_cmd.wait)
app.command("setup")(queue_cmd.setup)
app.command("baseline")(verdict_cmd.baseline)
app.command("noise")(verdict_cmd.noise)
app.command("verdict")(verdict_cmd.verdict)
app.command("calibration")(verdict_cmd.calibration)
app.command("plot")(verdict_cmd.plot)
app.command("merge")(verdict_cmd.merge)
app.command("status")(status_cmd.status)
app.command("next")(status_cmd.next_)
app.command("digest")(status_cmd.digest)
app.command("overnight")(overnight_cmd.overnight)
app.add_typer(ledger_cmd.app, name="ledger")
app.command("check")(guard_cmd.check)
app.command("taxonomy")(guard_cmd.show_taxonomy)
app.add_typer(guard_cmd.meta_app, name="meta")
app.command("protect")(protect_cmd.protect_)
app.command("unprotect")(protect_cmd.unprotect)
app.command("reveal")(protect_cmd.reveal)

if __name__ == "__main__":
    app()
