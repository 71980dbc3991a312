"""Where the research stands: ledger summary, ideas, worktrees, warnings, the next step and the digest.

Pure Python over one ledger read (no polars): `lab status` must stay fast on 100k rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import gitx, guard, ideas, jobs, ledger, meta, taxonomy, verdicts, worktrees

BASELINE_SLUGS = verdicts.BASELINE_SLUGS
DIGEST_LIMIT = 4000


@dataclass
class Summary:
    meta: str
    ideas: dict[str, int]
    worktrees: list[dict]
    runs: int
    latest: list[dict]
    baseline: dict | None  # {"mean", "std", "n", "eval_sha", "data_sha", "budget_s"}
    best: dict | None  # {"slug", "run_id", "val_bpb", "delta"}
    queued: dict[str, int] = field(default_factory=dict)  # per slug, pueue jobs without a row yet
    verdicts: dict[str, str] = field(default_factory=dict)  # per worktree slug, `lab verdict`'s line
    warnings: list[str] = field(default_factory=list)
    next_step: str = ""


def comparable(row: dict, ref: dict) -> bool:
    """Whether `row` may be compared with the baseline `ref` (verdicts.COMPARABLE)."""
    return verdicts.key(row) == ref["key"]


def baseline_of(rows: list[dict], train_sha: str | None = None) -> dict | None:
    """The baseline's comparable ok rows (verdicts.noise): mean, std, n, budget and the comparison key."""
    n = verdicts.noise(rows, train_sha)
    if n is None:
        return None
    return {"mean": n.mean, "std": n.std, "n": n.n, "eval_sha": n.key["eval_sha"], "data_sha": n.key["data_sha"],
            "budget_s": n.key["budget_s"], "mde": n.mde, "key": verdicts.key(n.key)}


def main_train_sha(root: Path) -> str | None:
    """sha of main's committed train.py: baseline rows of another train.py (before a merge) do not count."""
    blob = gitx.blobs(["main:train.py"], root)[0]
    return jobs.short_sha(blob) if blob is not None else None


def best_of(rows: list[dict], baseline: dict | None) -> dict | None:
    """The lowest val_bpb of an ok experiment row comparable with the baseline (any, without one)."""
    best, row = float("inf"), None
    for r in rows:  # one pass, no intermediate lists: lab status runs this over 100k rows
        if r["status"] == "ok" and r["slug"] not in BASELINE_SLUGS and (baseline is None or comparable(r, baseline)):
            value = float(r["val_bpb"])
            if value < best:
                best, row = value, r
    if row is None:
        return None
    delta = float(row["val_bpb"]) - baseline["mean"] if baseline else None
    return {"slug": row["slug"], "run_id": row["run_id"], "val_bpb": float(row["val_bpb"]), "delta": delta}


def warnings_for(root: Path, problems: list[ledger.Problem]) -> list[str]:
    warnings = [f"ledger: {p}" for p in problems[:5]] + ([f"ledger: {len(problems) - 5} more problem(s)"] if len(problems) > 5 else [])
    if gitx.branch(root) == "main":
        pending = [p for p in gitx.changed_paths(root) if taxonomy.is_global(p)]
        if pending:
            warnings.append(f"uncommitted global file(s) on main: {', '.join(pending)} (commit them from the root checkout)")
    if not meta.status(root).on:
        drift = gitx.drift(root, "HEAD", taxonomy.patterns_of("FROZEN"))
        if drift:
            warnings.append(f"frozen file(s) changed without META_MODE: {', '.join(drift[:5])} (evals will be invalid)")
    return warnings


def next_step(rows: list[dict], problems: list, all_ideas: list, trees: list, baseline: dict | None, warnings: list[str],
              want_waiting: int = 30, queued: dict[str, int] | None = None,
              verdict_of: dict[str, verdicts.Verdict] | None = None) -> str:
    """The single next step of program.md's loop; seeds already in the queue count as on their way."""
    queued, verdict_of = queued or {}, verdict_of or {}
    if problems:
        return f"FIX: {problems[0]} — write it at the top of RESEARCH_JOURNAL.md for the human; run no evals until it is fixed"
    drift = [w for w in warnings if w.startswith("frozen")]
    if drift:
        return f"RESTORE: {drift[0]}; `git checkout main -- FILE`, or ask the human for META_MODE"
    have = 0 if baseline is None else baseline["n"]
    if have + queued.get("main", 0) < 3:
        return (f"BASELINE: from the root checkout run `just eval --seed {have}`, or queue the missing seeds: "
                f"`lab queue main --q \"baseline noise?\" --h \"expect 0\" --seeds {3 - have - queued.get('main', 0)}` "
                f"({have} of 3 baseline seeds so far)")
    runs = {}
    for r in rows:
        runs.setdefault(r["slug"], []).append(r)
    by_slug = {i.slug: i for i in all_ideas}
    for tree in trees:
        ok = [r for r in runs.get(tree.slug, []) if baseline and r["status"] == "ok" and comparable(r, baseline)]
        waiting = queued.get(tree.slug, 0)
        if len(ok) + waiting < 3:
            seeds = sorted({int(r["seed"]) for r in ok})
            seed = next(s for s in range(len(seeds) + 1) if s not in seeds)
            return (f"RUN: cd 5_worktrees/{tree.slug} && just smoke, then `lab queue {tree.slug} --q … --h … "
                    f"--seeds {3 - len(ok) - waiting}` (or `just eval --seed {seed}` there, without a queue) "
                    f"({len(ok)} of 3 seeds so far, {waiting} queued)")
        if len(ok) < 3:
            continue  # its seeds are queued: the next step lies elsewhere meanwhile
        v = verdict_of.get(tree.slug)
        if v is not None and v.more_seeds > waiting:
            return (f"RUN: {tree.slug} is inconclusive: `lab queue {tree.slug} --q … --h … --seeds {v.more_seeds - waiting}` "
                    f"({v.reason[:160]})")
        if v is not None and v.more_seeds:
            continue  # the seeds it needs are queued
        if by_slug.get(tree.slug) and by_slug[tree.slug].status == "running":
            said = f" (verdict: {v.kind})" if v is not None else ""
            return f"REPORT{said}: `lab report {tree.slug}`, a journal entry (`lab journal add`), then `lab finish {tree.slug}`"
    proposed = [i for i in all_ideas if i.status == "proposed"]
    if proposed:
        return f"CRITIQUE: `lab idea critique {proposed[0].slug} --with \"claude -p\"` (or the critic subagent), then `lab idea rate`"
    waiting = sorted((i for i in all_ideas if i.status == "critiqued"), key=lambda i: -(i.rating or 0))
    if len(waiting) < want_waiting:
        return f"IDEATE: `lab idea new SLUG --title …` ({len(waiting)} of {want_waiting} critiqued ideas waiting)"
    best = waiting[0]
    return f"IMPLEMENT: `lab start {best.slug}` (rated {best.rating}: {best.title})"


def summarize(root: Path, want_waiting: int = 30, latest: int = 5) -> Summary:
    rows, problems = ledger.read(ledger.ledger_path(root))
    all_ideas = ideas.all_ideas(root)
    trees = worktrees.list_worktrees(root, ledger_rows=rows)
    counts = {s: 0 for s in ideas.STATUSES}
    for idea in all_ideas:
        counts[idea.status] = counts.get(idea.status, 0) + 1
    train_sha = main_train_sha(root)
    baseline = baseline_of(rows, train_sha)
    warnings = warnings_for(root, problems)
    queued = {slug: len(js) for slug, js in jobs.pending(root, {r["run_id"] for r in rows}).items()}
    verdict_of = verdicts_for(rows, [t.slug for t in trees], train_sha)
    summary = Summary(meta=meta.status(root).reason, ideas=counts, worktrees=[asdict(t) | {"path": str(t.path)} for t in trees],
                      runs=len(rows), latest=[_brief(r) for r in rows[-latest:]], baseline=baseline,
                      best=best_of(rows, baseline), queued=queued, warnings=warnings,
                      verdicts={slug: v.reason for slug, v in verdict_of.items()})
    summary.next_step = next_step(rows, problems, all_ideas, trees, baseline, warnings, want_waiting, queued, verdict_of)
    return summary


def verdicts_for(rows: list[dict], slugs: list[str], train_sha: str | None) -> dict[str, verdicts.Verdict]:
    """`lab verdict` for each slug that has rows, over one grouping of the ledger (status runs on 100k rows)."""
    base = [r for r in rows if r["slug"] in BASELINE_SLUGS]
    by_slug: dict[str, list[dict]] = {}
    for r in rows:
        by_slug.setdefault(r["slug"], []).append(r)
    out = {}
    for slug in slugs:
        if slug in by_slug and slug not in BASELINE_SLUGS:
            try:
                out[slug] = verdicts.verdict(base + by_slug[slug], slug, train_sha=train_sha)
            except verdicts.VerdictError:
                pass  # no baseline yet: next_step says BASELINE
    return out


def _brief(row: dict) -> dict:
    return {k: row[k] for k in ("run_id", "slug", "status", "val_bpb", "seed", "reason")}


def journal_titles(root: Path, k: int) -> list[str]:
    _, entries = guard.parse_journal((root / "RESEARCH_JOURNAL.md").read_bytes())
    return [e.heading.removeprefix("## ") for e in entries[:k]]


def digest(root: Path, k: int = 8) -> str:
    """What the agent reads at the start of a cycle, hard-capped at DIGEST_LIMIT characters."""
    s = summarize(root, latest=k)
    problem = (root / "0_docs" / "problem.md").read_text().split("## Task", 1)[-1].split("##", 1)[0]
    parts = ["# Digest", "Problem: " + " ".join(problem.split())[:300],
             f"Next: {s.next_step}", f"Meta: {s.meta}"]
    if s.baseline:
        b = s.baseline
        parts.append(f"Baseline: val_bpb {b['mean']:.4f} ± {b['std']:.4f} (n={b['n']}, budget {b['budget_s']}s)")
    if s.best:
        delta = f" ({s.best['delta']:+.4f} vs baseline)" if s.best["delta"] is not None else ""
        parts.append(f"Best: {s.best['slug']} {s.best['val_bpb']:.4f}{delta} run {s.best['run_id']}")
    parts += [f"Verdict {slug}: {line[:170]}" for slug, line in s.verdicts.items()]
    parts.append(f"Runs: {s.runs} in results.tsv; last {len(s.latest)}:")
    parts += [f"- {r['run_id']} {r['slug']} seed {r['seed']} {r['status']} {r['val_bpb'] or r['reason'][:60]}" for r in s.latest]
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
