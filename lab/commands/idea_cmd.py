"""`lab idea …`: write, list, show, critique and rate the idea files in the root checkout's 1_ideas/."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

import typer

from lab import tables
from lab.commands.common import fail, root
from lab.loop import ideas

app = typer.Typer(help="Ideas (1_ideas/): propose, critique, rate; the loop's first two steps.", no_args_is_help=True)


@app.command()
def new(
    slug: str = typer.Argument(..., help="1-40 lowercase letters, digits and '-', e.g. wider-mlp."),
    title: str = typer.Option("", "--title", help="One line, at most 100 characters."),
) -> None:
    """Create 1_ideas/{date}_{slug}.md from the template (status proposed) and print its path."""
    try:
        idea = ideas.new(root("lab idea"), slug, title)
    except ValueError as e:  # IdeaError and SlugError
        fail(f"lab idea: {e}")
    typer.echo(idea.path)


@app.command("list")
def list_ideas() -> None:
    """One line per idea: status, rating, slug, title; by status, then best rating first."""
    try:
        found = ideas.all_ideas(root("lab idea"))
    except ideas.IdeaError as e:
        fail(f"lab idea: {e}")
    if not found:
        typer.echo("no ideas yet (`lab idea new SLUG --title …`)")
        return
    found.sort(key=lambda i: (ideas.STATUSES.index(i.status), i.rating is None, -(i.rating or 0), i.slug))
    rows = [(i.status, "-" if i.rating is None else str(i.rating), i.slug, i.title) for i in found]
    for line in tables.aligned(rows):
        typer.echo(line)


@app.command()
def show(slug: str = typer.Argument(..., help="The idea's slug.")) -> None:
    """Print the idea file."""
    try:
        idea = ideas.find(root("lab idea"), slug)
        text = idea.path.read_text(encoding="utf-8")
    except ideas.IdeaError as e:
        fail(f"lab idea: {e}")
    typer.echo(text, nl=False)


def _run_critic(argv: list[str], prompt: str, cwd: Path, timeout_s: float) -> str:
    """The critic's stdout; IdeaError when it is missing, fails, times out or prints nothing."""
    name = argv[0]
    try:
        # Own session, so a timeout kills the critic's children too, not only the first process.
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except FileNotFoundError:
        raise ideas.IdeaError(f"critic command {name!r} not found: install it or give --with its full path") from None
    except OSError as e:
        raise ideas.IdeaError(f"critic command {name!r} cannot start ({e.strerror}): check --with") from None
    try:
        out, err = proc.communicate(prompt, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ideas.IdeaError(f"critic command {name!r} timed out after {timeout_s:g} s: nothing appended") from None
    if proc.returncode != 0:
        last = (err.strip().splitlines() or ["no stderr"])[-1]
        raise ideas.IdeaError(f"critic command {name!r} exited with {proc.returncode} ({last}): nothing appended")
    if not out.strip():
        raise ideas.IdeaError(f"critic command {name!r} printed nothing: nothing appended")
    return out


def _read_answer(source: Path) -> str:
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ideas.IdeaError(f"--from {source}: no such file: save the critic's answer there first") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ideas.IdeaError(f"--from {source}: cannot read it as UTF-8 text ({e})") from None
    if not text.strip():
        raise ideas.IdeaError(f"--from {source} is empty: nothing appended")
    return text


@app.command()
def critique(
    slug: str = typer.Argument(..., help="The idea's slug."),
    command: str = typer.Option("", "--with", help="Critic command, e.g. 'claude -p'; gets the prompt on stdin."),
    source: Path | None = typer.Option(None, "--from", help="A file holding the critic's answer (e.g. a subagent's)."),
    timeout_s: float = typer.Option(600.0, "--timeout-s", help="Kill the critic command after this many seconds."),
) -> None:
    """Print the critic's prompt; append a critique under ## Critique from --with CMD (run on it) or --from FILE."""
    try:
        where = root("lab idea")  # ideas live in the root checkout, also when run in a worktree
        idea = ideas.find(where, slug)
        prompt = ideas.critique_prompt(idea)
        if command and source:
            raise ideas.IdeaError("--with and --from both given: the critique comes from one of them")
        if source:
            idea = ideas.append_critique(where, slug, _read_answer(source))
            typer.echo(f"{idea.path}: critique appended from {source}, status {idea.status}; "
                       f"now `lab idea rate {slug} N` (1-5)")
            return
        if not command:
            typer.echo(prompt, nl=False)
            return
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise ideas.IdeaError(f"--with {command!r} does not split into words ({e}): check its quotes") from None
        if not argv:
            raise ideas.IdeaError("--with is blank: pass a command, e.g. --with 'claude -p'")
        # The idea file is read again after the critic ran, so edits made meanwhile are kept.
        idea = ideas.append_critique(where, slug, _run_critic(argv, prompt, where, timeout_s))
    except ideas.IdeaError as e:
        fail(f"lab idea: {e}")
    typer.echo(f"{idea.path}: critique appended, status {idea.status}; now `lab idea rate {slug} N` (1-5)")


@app.command()
def rate(
    slug: str = typer.Argument(..., help="The idea's slug."),
    rating: str = typer.Argument(..., help="1-5, after the critique (5 = run it first)."),
) -> None:
    """Set the idea's rating (1-5); it must have been critiqued."""
    try:
        # Parsed here rather than by typer so a bad value gets the same one-line error as the rest.
        if not (rating.isascii() and rating.strip().isdigit()):
            raise ideas.IdeaError(f"rating {rating!r} for '{slug}' is not an integer 1-5 (5 = run it first)")
        idea = ideas.rate(root("lab idea"), slug, int(rating))
    except ideas.IdeaError as e:
        fail(f"lab idea: {e}")
    typer.echo(f"{idea.slug}: rating {idea.rating}")


@app.command("set-status")
def set_status(
    slug: str = typer.Argument(..., help="The idea's slug."),
    status: str = typer.Argument(..., help=f"One of {', '.join(ideas.STATUSES)}."),
) -> None:
    """Set the idea's status (e.g. dropped, with one line why in the file)."""
    try:
        idea = ideas.set_status(root("lab idea"), slug, status)
    except ideas.IdeaError as e:
        fail(f"lab idea: {e}")
    typer.echo(f"{idea.slug}: status {idea.status}")
