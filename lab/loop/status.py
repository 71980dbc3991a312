"""Where the research stands: baseline, verdicts, proposed merges, warnings, the next step and the digest.

Pure Python over one ledger read (no polars): `lab status` must stay fast on 100k rows. Every effect
size shown here is a verdict's difference of means with its interval, never a best single seed.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import gitx, jobs, journal_format, ledger, names, runs, taxonomy
from lab.grader import protect
from lab.guard import meta
from lab.judge import verdicts
from lab.loop import ideas, reports, worktrees
from lab.queue import pueue

DIGEST_LIMIT = 4000
SHOWN_VERDICTS = 12  # newest experiment slugs listed by status and digest
CRITIQUE_DIR = Path(".cache") / "critiques"  # the agent's notes for commands: ignored by git, never a dirty tree
NOTES_DIR = Path(".cache") / "notes"


@dataclass
class Step:
    """The single next step: its kind, one line on what and why, and the one shell line to run (if any)."""

    kind: str
    say: str
    command: str | None = None  # run verbatim from the root checkout; None: the step is the agent's own writing

    def __str__(self) -> str:
        return f"{self.kind}: {self.say}" + (f"\n  $ {self.command}" if self.command else "")


@dataclass
class Summary:
    meta: str
    mode: str  # PROTECTED / UNPROTECTED (lab/grader/protect.py), the first line of status and digest
    ideas: dict[str, int]
    worktrees: list[dict]
    runs: int
    latest: list[dict]
    baseline: dict | None  # {"mean", "std", "n", "budget", "mde", "key"}
    best: dict | None  # the kept experiment with the lowest difference: {"slug", "diff", "lo", "hi", "reason"}
    in_flight: dict[str, int] = field(default_factory=dict)  # per slug, runs queued or training without a row yet
    verdicts: dict[str, str] = field(default_factory=dict)  # per experiment slug (finished ones too), the verdict line
    effects: dict[str, str] = field(default_factory=dict)  # the same slugs: kind, difference of means, interval
    proposed_merges: list[str] = field(default_factory=list)  # kept slugs not merged into main yet: the human's call
    warnings: list[str] = field(default_factory=list)
    next_step: str = ""
    step: dict = field(default_factory=dict)


def ideas_waiting(root: Path) -> int:
    """How many critiqued ideas `lab next` keeps waiting before it says IMPLEMENT: pyproject's [tool.lab]."""
    path = Path(root) / "pyproject.toml"
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["lab"]["ideas_waiting"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: no [tool.lab] ideas_waiting ({type(e).__name__}: {e}); "
                         "restore pyproject.toml from main") from None
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{path}: [tool.lab] ideas_waiting = {value!r} is not a whole number ≥ 0")
    return value


def judged(rows: list[dict], train_sha: str | None) -> tuple[dict | None, dict[str, verdicts.Verdict]]:
    """The baseline (verdicts.noise over main's train.py: mean, std, n, its budget and its comparison key) and
    `lab verdict` for every experiment slug with rows, newest first; the baseline's rows are gathered once."""
    base = verdicts.baseline_sample(rows, train_sha)
    if base is None:
        return None, {}  # no baseline yet: next_step says BASELINE
    n = verdicts.noise(rows, train_sha, baseline=base)
    baseline = {"mean": n.mean, "std": n.std, "n": n.n, "budget": runs.budget_text(n.key), "mde": n.mde, "key": n.key}
    by_slug: dict[str, list[dict]] = {}
    for r in reversed(rows):
        if r["slug"] not in names.BASELINE_SLUGS:
            by_slug.setdefault(r["slug"], []).append(r)
    return baseline, {slug: verdicts.verdict(slug_rows[::-1], slug, train_sha=train_sha, baseline=base)
                      for slug, slug_rows in by_slug.items()}


def best_of(verdict_of: dict[str, verdicts.Verdict]) -> dict | None:
    """The kept experiment with the lowest difference of means (its interval beside it)."""
    kept = [v for v in verdict_of.values() if v.kind == "keep" and v.diff is not None]
    if not kept:
        return None
    v = min(kept, key=lambda v: v.diff)
    return {"slug": v.slug, "diff": v.diff, "lo": v.lo, "hi": v.hi, "reason": v.reason}


def effect_text(v: verdicts.Verdict) -> str:
    """A verdict's effect size as every screen shows it: `keep -0.6400 (95% CI -0.9500 to -0.3300), 3 vs 3 seeds`."""
    if v.diff is None:
        return f"{v.kind}: no comparable rows yet"
    interval = f" (95% CI {v.lo:+.4f} to {v.hi:+.4f})" if v.lo is not None else ""
    return f"{v.kind} {v.diff:+.4f} val_bpb{interval}, {v.n_exp} vs {v.n_base} seeds"


def proposed_merges(root: Path, verdict_of: dict[str, verdicts.Verdict]) -> list[str]:
    """Kept slugs whose exp/SLUG branch is not in main yet: what the human may merge (`lab merge SLUG`)."""
    kept = [slug for slug, v in verdict_of.items() if v.kind == "keep"]
    if not kept:
        return []
    merged = set(gitx.git("branch", "--format=%(refname:short)", "--merged", names.MAIN, cwd=root).split())
    have = set(gitx.git("branch", "--format=%(refname:short)", "--list", f"{names.EXP}*", cwd=root).split())
    return [s for s in kept if worktrees.branch_of(s) in have and worktrees.branch_of(s) not in merged]


def ledger_warnings(problems: list[ledger.Problem]) -> list[str]:
    return [f"ledger: {p}" for p in problems[:5]] + ([f"ledger: {len(problems) - 5} more problem(s)"] if len(problems) > 5 else [])


def checkout_warnings(root: Path) -> list[str]:
    """Frozen drift without META_MODE and stray files in the root checkout (git's answers)."""
    warnings = []
    if not meta.status(root).on:
        drift = gitx.drift(root, "HEAD", taxonomy.patterns_of("FROZEN"))
        if drift:
            warnings.append(f"frozen file(s) changed without META_MODE: {', '.join(drift[:5])} (evals will be invalid)")
    stray = [p for p in gitx.changed_paths(root, untracked=True) if not _notes(p) and taxonomy.classes_of(p) == ("REGULAR",)]
    if stray:
        warnings.append(f"files outside the notes in the root checkout: {', '.join(stray[:5])} "
                        "(logs and outputs belong under .cache/, which git ignores)")
    return warnings


def _notes(path: str) -> bool:
    """The agent's notes in the root checkout, committed on main (program.md §5.9)."""
    return taxonomy.is_global(path) or path.startswith(jobs.NOTES)


def queue_ready() -> bool:
    """Whether pueue answers here with lab's group: then runs are queued, else run one at a time."""
    try:
        return "lab" in pueue.groups()
    except pueue.PueueError:
        return False


@dataclass
class Facts:
    """What next_step needs beyond the ledger, gathered once by `summarize`."""

    trees: list[worktrees.Worktree]
    flying: list[dict]  # runs on their way: queued jobs and live evals
    train_sha: dict[str, str]  # per worktree slug, its train.py's sha (the sample its rows join)
    unclean: Callable[[worktrees.Worktree], list[str]]  # a worktree's paths that differ from HEAD (git, on demand)
    smoke: Callable[[worktrees.Worktree], dict | None]  # the last smoke result on a worktree's content (on demand)
    root_smoke: Callable[[], dict | None]  # the same for the root checkout (main): the queue's gate for the baseline
    reported: set[str]  # slugs with a report
    journaled: set[str]  # slugs named in a journal heading
    root_notes: bool  # the root checkout has uncommitted notes (ledger, journal, ideas, reports)
    queue: bool  # pueue is ready
    device: str  # "cuda" | "cpu": what an eval here defaults to
    eval_sha: str
    prepare_sha: str
    main_sha: str | None


def _plan(baseline: dict | None, facts: Facts) -> dict:
    """The comparison key every run must share: the baseline's, or eval's defaults before any baseline row."""
    if baseline:
        return baseline["key"]
    return {"budget_s": jobs.DEFAULT_BUDGET_S[facts.device], "max_steps": "", "device": runs.device_column(facts.device),
            "eval_sha": facts.eval_sha, "prepare_sha": facts.prepare_sha}


def _run_command(slug: str, seeds: list[int], args: list[str], facts: Facts, idea: ideas.Idea | None) -> str:
    tail = f" -- {shlex.join(args)}" if args else ""
    if slug == names.MAIN:
        if facts.queue:
            return f"lab baseline --seeds {len(seeds)}{tail}"
        return shlex.join(["just", "eval", "--seed", str(seeds[0]), *args])
    where = f"{worktrees.DIR}/{slug}"
    if facts.queue:
        question = idea.title if idea else slug
        hypothesis = (ideas.prediction(idea).strip().splitlines() or [""])[0] if idea else ""
        return (f"lab queue {slug} --q {shlex.quote(question)} --h {shlex.quote(hypothesis or 'expect a change')} "
                f"--seeds {len(seeds)}{tail}")
    return f"cd {where} && " + shlex.join(["just", "eval", "--seed", str(seeds[0]), *args])


def next_step(rows: list[dict], problems: list, all_ideas: list, baseline: dict | None, warnings: list[str],
              want_waiting: int, facts: Facts, verdict_of: dict[str, verdicts.Verdict]) -> Step:
    """The single next step of program.md's loop, with the complete command when one shell line does it."""
    if problems:
        return Step("FIX", f"{problems[0]} — write it at the top of RESEARCH_JOURNAL.md for the human; run no evals until it is fixed")
    drift = [w for w in warnings if w.startswith("frozen")]
    if drift:
        return Step("RESTORE", f"{drift[0]}; restore them with `git checkout main -- FILE`")
    plan = _plan(baseline, facts)
    args = runs.eval_args(plan, facts.device)
    in_flight = {}
    for r in facts.flying:
        in_flight.setdefault(r.get("slug"), []).append(r)
    first = verdicts.LOOKS[0]

    base_flying = sum(len(in_flight.get(s, [])) for s in names.BASELINE_SLUGS)
    have = baseline["n"] if baseline else 0
    if have + base_flying < first:
        last = next((r for r in reversed(rows) if r["slug"] in names.BASELINE_SLUGS and r["train_sha"] == facts.main_sha), None)
        if last and last["status"] in ("crash", "invalid", "timeout") and not have:
            return Step("FIX", f"the baseline's run {last['run_id']} is {last['status']}: {last['reason'][:200]} — "
                               "main's own train.py fails: write it at the top of RESEARCH_JOURNAL.md for the human")
        if facts.queue and (smoke := facts.root_smoke()) is None:  # `lab baseline` would refuse without one
            return Step("SMOKE", "main has no smoke pass yet (the queue runs only what `just smoke` passed); "
                                 "from the root checkout:", "just smoke")
        if facts.queue and smoke.get("status") != "ok":
            return Step("FIX", f"`just smoke` failed on main: {smoke.get('reason', '')[:200]} — main's own train.py "
                               "fails: write it at the top of RESEARCH_JOURNAL.md for the human")
        seeds = runs.next_seeds(rows, names.MAIN, facts.main_sha, plan, facts.flying, first - have - base_flying)
        return Step("BASELINE", f"{have} of {first} baseline seeds at {runs.budget_text(plan)} so far"
                                f"{f', {base_flying} on their way' if base_flying else ''}; from the root checkout:",
                    _run_command(names.MAIN, seeds, args, facts, None))
    by_slug = {i.slug: i for i in all_ideas}
    waiting_on_runs = []
    for tree in facts.trees:
        step = _tree_step(tree, rows, plan, args, facts, in_flight.get(tree.slug, []), verdict_of.get(tree.slug),
                          by_slug.get(tree.slug))
        if step is None:
            waiting_on_runs.append(tree.slug)
        elif step is not True:
            return step
    if facts.root_notes:
        return Step("NOTES", "commit your notes (ledger rows, journal, ideas, reports) from the root checkout, on main:",
                    "git add results.tsv RESEARCH_JOURNAL.md 1_ideas 9_reports 0_docs/papers && "
                    "git commit -q -m 'notes: ledger, journal, ideas, reports'")
    proposed = [i for i in all_ideas if i.status == "proposed"]
    if proposed:
        slug = proposed[0].slug
        notes = CRITIQUE_DIR / f"{slug}.md"
        return Step("CRITIQUE", f"give `lab idea show {slug}` to the critic subagent (or `lab idea critique {slug} "
                                f"--with \"claude -p\"`), save its answer as {notes}, store it, then "
                                f"`lab idea rate {slug} N` (1-5):", f"lab idea critique {slug} --from {notes}")
    waiting = sorted((i for i in all_ideas if i.status == "critiqued"), key=lambda i: -(i.rating or 0))
    if len(waiting) < want_waiting:
        return Step("IDEATE", f"write an idea: `lab idea new SLUG --title …`, then fill in its sections "
                              f"({len(waiting)} of {want_waiting} critiqued ideas waiting; pyproject.toml's "
                              "[tool.lab] ideas_waiting)")
    if waiting:
        best = waiting[0]
        return Step("IMPLEMENT", f"start the best-rated idea (rated {best.rating or '-'}: {best.title}):",
                    f"lab start {best.slug}")
    if waiting_on_runs or facts.flying:
        queued = [r for r in facts.flying if r.get("task") is not None]
        return Step("WAIT", f"only runs in flight remain ({', '.join(waiting_on_runs) or 'baseline'})",
                    "lab wait" if queued else None)
    return Step("IDEATE", "no idea is waiting: `lab idea new SLUG --title …`")


def _tree_step(tree: worktrees.Worktree, rows: list[dict], plan: dict, args: list[str], facts: Facts,
               flying: list[dict], v: verdicts.Verdict | None, idea: ideas.Idea | None) -> Step | bool | None:
    """The next step of one experiment: a Step, None while only its runs are in flight, True when it is done."""
    slug, where = tree.slug, f"{worktrees.DIR}/{tree.slug}"
    loose = facts.unclean(tree)
    frozen = [p for p in loose if "FROZEN" in taxonomy.classes_of(p)]
    if frozen:
        return Step("RESTORE", f"{where}: frozen file(s) changed: {', '.join(frozen[:5])}: "
                               f"restore them with `git -C {where} checkout main -- FILE`")
    if loose:
        return Step("COMMIT", f"{where} has uncommitted paths ({', '.join(loose[:5])}): commit your train.py change "
                              f"on exp/{slug} (`git -C {where} commit -am \"{slug}: …\"`); logs and outputs belong "
                              "under .cache/, which git ignores")
    if tree.ahead == 0:
        return Step("EDIT", f"implement the idea in {where}/train.py (one change, the smallest that tests it), "
                            f"then commit it on exp/{slug}")
    smoke = facts.smoke(tree)
    if smoke is None:
        return Step("SMOKE", f"the commit on exp/{slug} has no smoke pass yet:", f"cd {where} && just smoke")
    if smoke.get("status") != "ok":
        return Step("FIX", f"`just smoke` failed on this commit of exp/{slug}: {smoke.get('reason', '')[:200]}; "
                           "fix train.py, commit, and smoke again")
    sha = facts.train_sha[slug]
    mine = [r for r in rows if r["slug"] == slug and r["train_sha"] == sha]
    if mine and mine[-1]["status"] in ("crash", "invalid", "timeout"):
        last = mine[-1]
        return Step("FIX", f"run {last['run_id']} of {slug} is {last['status']}: {last['reason'][:200]}; fix train.py "
                           f"in {where}, commit, and `just smoke` again")
    ok = {int(r["seed"]) for r in mine if r["status"] == "ok" and runs.same_plan(r, plan)}
    if not ok:
        v = None  # the verdict judges an older train.py: this one starts its own sample
    want = max(verdicts.LOOKS[0] - len(ok), v.more_seeds if v is not None else 0) - len(flying)  # the first look: 3
    if want > 0:
        seeds = runs.next_seeds(rows, slug, sha, plan, facts.flying, want)
        done = f"{len(ok)} seed(s) so far" + (f", {len(flying)} on their way" if flying else "")
        why = f"{v.reason[:160]}" if v is not None and v.n_exp else f"a verdict first looks at {verdicts.LOOKS[0]} seeds"
        return Step("RUN", f"{slug} at {runs.budget_text(plan)}: {done}; {why}:",
                    _run_command(slug, seeds, args, facts, idea))
    if flying or v is None or v.kind == "inconclusive" or len(ok) < verdicts.LOOKS[0]:
        return None
    if slug not in facts.reported:
        return Step("REPORT", f"{slug}: {effect_text(v)}; write the report (it quotes the verdict):",
                    f"lab verdict {slug} && lab report {slug}")
    if slug not in facts.journaled:
        notes = NOTES_DIR / f"journal-{slug}.md"
        title = f"{slug}: {v.kind} {v.diff:+.4f} val_bpb"
        return Step("JOURNAL", f"fill in the report's TODOs, write the entry's body (**Observation:** with run ids, "
                               f"**Inference:** how sure and why) as {notes}, then:",
                    f"lab journal add {shlex.quote(title)} --from {notes}")
    return Step("FINISH", f"{slug} is reported and journaled: remove its worktree (the branch stays"
                          f"{', for the human to merge' if v.kind == 'keep' else ''}):", f"lab finish {slug}")


def summarize(root: Path, want_waiting: int | None = None, latest: int = 5) -> Summary:
    root = Path(root)
    path = ledger.ledger_path(root)
    with ThreadPoolExecutor(max_workers=4) as pool:  # git and pueue answer while this thread parses the ledger
        asked_trees, asked_queue = pool.submit(worktrees.git_view, root), pool.submit(queue_ready)
        asked_sha, asked_warnings = pool.submit(runs.main_train_sha, root), pool.submit(checkout_warnings, root)
        rows, problems = ledger.read(path)
        if runs.settle_orphans(root, rows):  # evals that died unseen: their killed rows, once
            rows, problems = ledger.read(path)
        rows, left_out = protect.verified(root, rows)  # protected: the grader's rows only
        trees = worktrees.with_rows(asked_trees.result(), rows)
        queue, main_sha = asked_queue.result(), asked_sha.result()
        warnings = ledger_warnings(problems) + asked_warnings.result() + ([left_out] if left_out else [])
    all_ideas = ideas.all_ideas(root)
    counts = {s: 0 for s in ideas.STATUSES}
    for idea in all_ideas:
        counts[idea.status] = counts.get(idea.status, 0) + 1
    baseline, verdict_of = judged(rows, main_sha)
    recorded = {r["run_id"] for r in rows}
    flying = runs.in_flight(root, recorded)
    eval_sha = jobs.file_sha(root / "eval.py")
    facts = Facts(  # git is asked about a worktree only when next_step gets to it (status runs on every cycle)
        trees=trees, flying=flying, train_sha={t.slug: jobs.file_sha(t.path / "train.py") for t in trees},
        unclean=lambda t: jobs.unclean(t.path) if t.dirty else [],
        smoke=lambda t: jobs.smoke_result(root, jobs.content_key(t.path)),
        root_smoke=lambda: jobs.smoke_result(root, jobs.content_key(root)),
        reported={s for s in verdict_of if reports.existing(root, s)},
        journaled=journaled(root, list(verdict_of)),
        root_notes=any(_notes(p) for p in gitx.changed_paths(root, untracked=True)) if gitx.branch(root) == names.MAIN else False,
        queue=queue, device="cuda" if runs.gpu_count() else "cpu", eval_sha=eval_sha,
        prepare_sha=jobs.file_sha(root / "prepare.py"), main_sha=main_sha,
    )
    in_flight: dict[str, int] = {}
    for r in flying:
        in_flight[r.get("slug", "")] = in_flight.get(r.get("slug", ""), 0) + 1
    shown = dict(list(verdict_of.items())[:SHOWN_VERDICTS])
    summary = Summary(meta=meta.status(root).reason, mode=protect.mode_line(root), ideas=counts,
                      worktrees=[asdict(t) | {"path": str(t.path)} for t in trees],
                      runs=len(rows), latest=[_brief(r) for r in rows[-latest:]], baseline=baseline,
                      best=best_of(verdict_of), in_flight=in_flight, warnings=warnings,
                      verdicts={slug: v.reason for slug, v in shown.items()},
                      effects={slug: effect_text(v) for slug, v in shown.items()},
                      proposed_merges=proposed_merges(root, verdict_of))
    step = next_step(rows, problems, all_ideas, baseline, warnings,
                     ideas_waiting(root) if want_waiting is None else want_waiting, facts, verdict_of)
    summary.next_step, summary.step = str(step), asdict(step)
    return summary


def journaled(root: Path, slugs: list[str]) -> set[str]:
    """Slugs named in a journal entry's heading (`lab next` proposes `SLUG: …` titles)."""
    headings = [e.heading for e in journal_format.parse((Path(root) / journal_format.RESEARCH).read_bytes())[1]]
    return {s for s in slugs if any(f"— {s}:" in h for h in headings)}


def _brief(row: dict) -> dict:
    return {k: row[k] for k in ("run_id", "slug", "status", "val_bpb", "seed", "reason")} | {"budget": runs.budget_text(row)}


def journal_titles(root: Path, k: int) -> list[str]:
    _, entries = journal_format.parse((root / journal_format.RESEARCH).read_bytes())
    return [e.heading.removeprefix("## ") for e in entries[:k]]


def baseline_line(b: dict | None) -> str:
    if not b:
        return "baseline: none yet"
    return f"baseline: val_bpb {b['mean']:.4f} ± {b['std']:.4f} (n={b['n']}, budget {b['budget']})"


def best_line(best: dict | None) -> str:
    if not best:
        return "best: no kept experiment yet"
    interval = f" (95% CI {best['lo']:+.4f} to {best['hi']:+.4f})" if best["lo"] is not None else ""
    return f"best: {best['slug']} keep {best['diff']:+.4f} val_bpb{interval} vs the baseline"


def digest(root: Path, k: int = 8) -> str:
    """What the agent reads at the start of a cycle, hard-capped at DIGEST_LIMIT characters."""
    s = summarize(root, latest=k)
    problem = (root / "0_docs" / "problem.md").read_text().split("## Task", 1)[-1].split("##", 1)[0]
    parts = [s.mode, "# Digest", "Problem: " + " ".join(problem.split())[:300],
             f"Next: {s.next_step}", f"Meta: {s.meta}", first_upper(baseline_line(s.baseline)), first_upper(best_line(s.best))]
    parts += [f"Verdict {slug}: {line[:170]}" for slug, line in s.verdicts.items()]
    if s.proposed_merges:
        parts.append("Proposed merges (the human's): " + ", ".join(s.proposed_merges))
    parts.append(f"Runs: {s.runs} in results.tsv; last {len(s.latest)}:")
    parts += [f"- {r['run_id']} {r['slug']} seed {r['seed']} {r['budget']} {r['status']} {r['val_bpb'] or r['reason'][:60]}"
              for r in s.latest]
    parts.append("Journal (newest first):")
    parts += [f"- {t[:100]}" for t in journal_titles(root, k)]
    open_ideas = sorted((i for i in ideas.all_ideas(root) if i.status in ("proposed", "critiqued", "running")),
                        key=lambda i: (-(i.rating or 0), i.slug))
    parts.append(f"Open ideas ({len(open_ideas)}):")
    parts += [f"- [{i.status} {i.rating or '-'}] {i.slug}: {i.title[:70]}" for i in open_ideas[:k]]
    parts += [f"Warning: {w[:150]}" for w in s.warnings[:3]]
    text = "\n".join(line[:200] for line in parts) + "\n"
    if len(text) > DIGEST_LIMIT:
        cut = "\n… (digest truncated at 4000 characters)\n"
        text = text[: DIGEST_LIMIT - len(cut)].rsplit("\n", 1)[0] + cut
    return text


def first_upper(line: str) -> str:
    """`line` with its first letter upper-case."""
    return line[:1].upper() + line[1:]  # str.capitalize would lower the rest ("95% CI")
