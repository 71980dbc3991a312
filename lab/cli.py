"""The `lab` command: composes one small typer app per command group."""

import typer

from lab.commands import guard_cmd, ledger_cmd

app = typer.Typer(help="lab — the research workspace's tooling. See program.md for the loop.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(ledger_cmd.app, name="ledger")
app.add_typer(guard_cmd.meta_app, name="meta")
app.command("check")(guard_cmd.check)
app.command("taxonomy")(guard_cmd.show_taxonomy)

if __name__ == "__main__":
    app()
