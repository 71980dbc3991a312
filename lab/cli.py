"""The `lab` command: one table of commands, each imported from its module under lab/commands/ only when it runs."""

import importlib

import click
import typer
from typer.core import TyperGroup

# command name: (module under lab/commands/, attribute): a typer app is mounted as a group, a function as a command.
# The order is `lab --help`'s.
COMMANDS = {
    "start": ("worktree_cmd", "start"),
    "worktrees": ("worktree_cmd", "worktrees"),
    "finish": ("worktree_cmd", "finish"),
    "report": ("report_cmd", "report"),
    "wait": ("queue_cmd", "wait"),
    "setup": ("queue_cmd", "setup"),
    "baseline": ("verdict_cmd", "baseline"),
    "noise": ("verdict_cmd", "noise"),
    "verdict": ("verdict_cmd", "verdict"),
    "calibration": ("verdict_cmd", "calibration"),
    "plot": ("verdict_cmd", "plot"),
    "merge": ("verdict_cmd", "merge"),
    "status": ("status_cmd", "status"),
    "next": ("status_cmd", "next_"),
    "digest": ("status_cmd", "digest"),
    "overnight": ("overnight_cmd", "overnight"),
    "check": ("guard_cmd", "check"),
    "taxonomy": ("guard_cmd", "show_taxonomy"),
    "protect": ("protect_cmd", "protect_"),
    "unprotect": ("protect_cmd", "unprotect"),
    "reveal": ("protect_cmd", "reveal"),
    "idea": ("idea_cmd", "app"),
    "journal": ("journal_cmd", "app"),
    "queue": ("queue_cmd", "app"),
    "ledger": ("ledger_cmd", "app"),
    "meta": ("guard_cmd", "meta_app"),
}


def _build(name: str) -> click.Command:
    """COMMANDS[name] as typer builds it inside a group: add_typer for an app, command for a function."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(f"lab.commands.{module}"), attribute)
    holder = typer.Typer(callback=lambda: None)  # with a callback typer keeps a lone entry a group, not the entry
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)  # a group even with one command (`lab meta status`)
    else:
        holder.command(name)(target)
    return typer.main.get_command(holder).commands[name]


class _Lazy(TyperGroup):
    """`lab X` imports X's module only; `lab --help` and a mistyped command (for suggestions) import them all."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            self.commands[name] = _build(name)
        return self.commands.get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in COMMANDS:
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_Lazy, help="lab — the research workspace's tooling. See program.md for the loop.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _lab() -> None:
    pass  # typer makes a group of an app with a callback or registered commands; ours are looked up, not registered


if __name__ == "__main__":
    app()
