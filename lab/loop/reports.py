"""9_reports/{date}_{slug}.md: a report pre-filled from the idea and the ledger, for the agent to finish."""

from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from lab import files, journal_format, ledger, names, runs, slugs
from lab.grader import protect
from lab.judge import verdicts
from lab.loop import ideas

FOLDER = "9_reports"
TEMPLATE = "_TEMPLATE.md"
TABLE_COLUMNS = ("run_id", "slug", "seed", "status", "val_bpb", "steps", "tokens")
NOTE_CHARS = 100


class ReportError(ValueError):
    """A report that cannot be written; the message names the slug or file and the fix."""


def existing(root: Path, slug: str) -> list[Path]:
    """Reports already written for `slug` (any date)."""
    pattern = re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}_{re.escape(slug)}\.md")
    folder = Path(root) / FOLDER
    return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name)) if folder.is_dir() else []


def write(root: Path, slug: str, now: datetime | None = None,
          warn: Callable[[str], None] | None = None) -> Path:
    """Write 9_reports/{YYYY-MM-DD}_{slug}.md in the root checkout; return its path.

    `warn` gets one line per ledger problem (default: stderr); they never stop the report.
    """
    root, warn = Path(root), warn or (lambda line: print(line, file=sys.stderr))
    try:
        slugs.check(slug)
        idea = ideas.find(root, slug)
        prediction = ideas.prediction(idea)
    except (slugs.SlugError, ideas.IdeaError) as e:
        raise ReportError(str(e)) from None
    if done := existing(root, slug):
        raise ReportError(f"{FOLDER}/{done[0].name} already reports '{slug}': edit it instead of writing another")
    results = root / ledger.FILENAME
    if not results.exists():
        raise ReportError(f"{results} does not exist: restore it with `git checkout -- {ledger.FILENAME}` in {root}")
    rows, problems = ledger.read(results)
    for problem in problems:
        warn(f"warning: {problem} (line left out of the report)")
    rows, left_out = protect.verified(root, rows)
    if left_out:
        warn(f"warning: {left_out}")
    runs_of = [r for r in rows if r["slug"] == slug]
    if not runs_of:
        raise ReportError(f"no runs of '{slug}' in results.tsv: run `just eval` in 5_worktrees/{slug} first")
    template = root / FOLDER / TEMPLATE
    if not template.is_file():
        raise ReportError(f"{FOLDER}/{TEMPLATE} is missing: restore it from main "
                          f"(`git checkout main -- {FOLDER}/{TEMPLATE}`)")
    now = now or datetime.now()
    path = root / FOLDER / f"{now:{journal_format.DAY}}_{slug}.md"
    try:
        judged = verdicts.verdict(rows, slug, train_sha=runs.main_train_sha(root))
    except verdicts.VerdictError as e:
        judged = e
    text = render(template.read_text(encoding="utf-8"), idea, prediction, runs_of, rows, root, now, judged)
    _write_new(path, text)
    if idea.status == "done":  # a report closes a finished experiment; other states are the agent's call
        ideas.set_status(root, slug, "reported")
    return path


def render(template: str, idea: ideas.Idea, prediction: str, slug_rows: list[dict[str, str]], rows: list[dict[str, str]],
           root: Path, now: datetime, judged: verdicts.Verdict | verdicts.VerdictError) -> str:
    """The report's text: the template with front matter, title, Setup, Results and Observed vs expected filled.

    Every number comes from the verdict: its rows, its difference of means and its interval; rows it
    leaves out are listed with the reason, never pooled into a mean.
    """
    front, body = _split_front(template)
    try:
        idea_path = idea.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        idea_path = str(idea.path)
    front = _fill_front(front, {"slug": idea.slug, "idea": idea_path, "branch": f"{names.EXP}{idea.slug}",
                                "date": f"{now:{journal_format.DAY}}"})
    preamble, sections = _sections(body)
    # The template's own comment is about copying the template; the report keeps only its title.
    preamble = re.sub(r"<!--.*?-->\n?", "", preamble, flags=re.S)
    kind = judged.kind if isinstance(judged, verdicts.Verdict) else "TODO"
    preamble = re.sub(r"^# .*$", f"# {idea.slug}: {idea.title} — verdict: {kind}", preamble, count=1, flags=re.M)
    counted = set(judged.run_ids) if isinstance(judged, verdicts.Verdict) else set()
    base_ids = set(judged.base_run_ids) if isinstance(judged, verdicts.Verdict) else set()
    base = [r for r in rows if r["run_id"] in base_ids]
    fills = {
        "Setup": _setup(slug_rows, base),
        "Results": _results(sections.get("Results", ""), idea.slug, slug_rows, base, counted, judged),
        "Observed vs expected": _observed(prediction, idea.slug, judged),
    }
    missing = [name for name in fills if name not in sections]
    if missing:
        raise ReportError(f"{FOLDER}/{TEMPLATE} has no '## {missing[0]}' section: restore it from main")
    out = [front, preamble.lstrip("\n")]
    for name, text in sections.items():
        out.append(_with_fill(text, fills[name]) if name in fills else text)
    return "".join(out)


def _split_front(text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        raise ReportError(f"{FOLDER}/{TEMPLATE} does not start with a `---` front matter: restore it from main")
    end = next((i for i, line in enumerate(lines[1:], 1) if line.rstrip() == "---"), None)
    if end is None:
        raise ReportError(f"{FOLDER}/{TEMPLATE}: the front matter is never closed: restore it from main")
    return "".join(lines[:end + 1]), "".join(lines[end + 1:])


def _fill_front(front: str, values: dict[str, str]) -> str:
    def fill(m: re.Match) -> str:
        return f"{m[1]}: {values[m[1]]}" if m[1] in values else m[0]
    return re.sub(r"^([A-Za-z_][\w-]*):.*$", fill, front, flags=re.M)


def _sections(body: str) -> tuple[str, dict[str, str]]:
    """The text before the first '## ' heading, and each section's text (heading included) by name."""
    parts = re.split(r"(?m)^(?=## )", body)
    return parts[0], {p.splitlines()[0][3:].strip(): p for p in parts[1:]}


def _with_fill(text: str, fill: str) -> str:
    """The section's heading and comment (kept for the agent), then the generated text."""
    heading, _, rest = text.partition("\n")
    comment = f"{m[1]}\n\n" if (m := re.match(r"\s*(<!--.*?-->)", rest, re.S)) else "\n"
    return f"{heading}\n{comment}{fill}\n\n"


def _distinct(rows: list[dict[str, str]], column: str) -> str:
    values = list(dict.fromkeys(r[column] for r in rows))
    return ", ".join(v or "—" for v in values) or "—"


def _setup(slug_rows: list[dict[str, str]], base: list[dict[str, str]]) -> str:
    commits = list(dict.fromkeys(r["commit"][:12] + (" (dirty)" if r["dirty"] == "1" else "") for r in slug_rows))
    lines = [
        f"- commits: {', '.join(c or '—' for c in commits)}",
        f"- budget: {', '.join(dict.fromkeys(runs.budget_text(r) for r in slug_rows))}"
        f" (baseline: {', '.join(dict.fromkeys(runs.budget_text(r) for r in base)) or 'no comparable rows'})",
        f"- seeds: {_distinct(slug_rows, 'seed')}",
        f"- devices: {_distinct(slug_rows, 'device')}",
        f"- eval_sha: {_distinct(slug_rows, 'eval_sha')}; data_sha: {_distinct(slug_rows, 'data_sha')}",
        f"- train_sha: {_distinct(slug_rows, 'train_sha')} "
        f"(baseline: {_distinct(base, 'train_sha') if base else 'no comparable rows'})",
        "- change: TODO (what changed in train.py, one or two sentences, and the diff size)",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= NOTE_CHARS else text[:NOTE_CHARS - 1] + "…"


def _row(row: dict[str, str], note: str) -> str:
    return "| " + " | ".join([*(_cell(row[c]) for c in TABLE_COLUMNS), _cell(note)]) + " |"


def _summary(values: list[float]) -> str:
    if not values:
        return "no counted runs"
    std = f"{statistics.stdev(values):.4f}" if len(values) > 1 else "n/a"
    return f"{statistics.mean(values):.4f} ± {std} (n={len(values)})"


def _note(row: dict[str, str], counted: set[str]) -> str:
    if row["status"] != "ok":
        return row["reason"]
    return ("counted" if row["run_id"] in counted else "not counted (another budget, grader, device or train.py, "
            "or a repeated seed)") + (f"; {row['label']}" if row["label"] else "")


def _results(section: str, slug: str, slug_rows: list[dict[str, str]], base: list[dict[str, str]], counted: set[str],
             judged: verdicts.Verdict | verdicts.VerdictError) -> str:
    table = [line for line in section.splitlines() if line.startswith("|")][:2]  # the template's header rows
    if len(table) < 2:
        raise ReportError(f"{FOLDER}/{TEMPLATE} has no table header in '## Results': restore it from main")
    table += [_row(r, _note(r, counted)) for r in slug_rows]
    table += [_row(r, "baseline, counted" + (f"; {r['label']}" if r["label"] else "")) for r in base]
    mine = [float(r["val_bpb"]) for r in slug_rows if r["run_id"] in counted]
    lines = ["", f"- {slug}: val_bpb {_summary(mine)}", f"- baseline: val_bpb {_summary([float(r['val_bpb']) for r in base])}",
             f"- effect ({slug} − baseline, the verdict's): {effect(judged)}"]
    return "\n".join(table + lines)


def effect(judged: verdicts.Verdict | verdicts.VerdictError) -> str:
    """The one effect size of an experiment: the verdict's difference of means and its 95% interval."""
    if not isinstance(judged, verdicts.Verdict):
        return f"n/a ({judged})"
    if judged.diff is None:
        return "n/a (no comparable ok runs on one side)"
    interval = f" (95% CI {judged.lo:+.4f} to {judged.hi:+.4f})" if judged.lo is not None else " (no interval below 2 seeds a side)"
    return f"{judged.diff:+.4f} val_bpb{interval}, {judged.n_exp} vs {judged.n_base} seeds"


def _observed(prediction: str, slug: str, judged: verdicts.Verdict | verdicts.VerdictError) -> str:
    quoted = "\n".join(f"> {line}".rstrip() for line in prediction.strip().splitlines())
    quoted = quoted or "> (the idea's Prediction section is empty)"
    line = judged.reason if isinstance(judged, verdicts.Verdict) else f"none yet: {judged}"
    return (f"Predicted (idea file, word for word):\n\n{quoted}\n\n"
            f"Observed ({slug} − baseline): {effect(judged)}.\n\n"
            f"Statistical verdict (`lab verdict {slug}`): {line}\n\n"
            "Prediction: TODO (held / missed / wrong direction)")


def _write_new(path: Path, text: str) -> None:
    try:
        files.write_new(path, text.encode())
    except FileExistsError:
        raise ReportError(f"{FOLDER}/{path.name} already exists: edit it instead of writing another") from None
