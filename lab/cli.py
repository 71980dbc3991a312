"""The `lab` command: composes one small typer app per command group."""

import typer

from lab.commands import ledger_cmd

app = typer.Typer(help="lab — the research workspace's tooling. See program.md for the loop.", no_args_is_help=True, add_completion=False)
app.add_typer(ledger_cmd.app, name="ledger")

if __name__ == "__main__":
    app()
