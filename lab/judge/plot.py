"""The progress plot: every run over time, the baseline band and the best-so-far frontier, as one PNG.

The picture a person looks at first in the morning (`lab plot`). It draws only from ledger rows:
ok runs as dots coloured by slug (baseline grey), failed runs as red crosses in a strip along the
bottom (they have no val_bpb, so they get no y position that could be read as one), the baseline as
mean ± std (the same rows as `lab status`), and the running minimum of the kept changes as a step
line, its improvements labelled with slug and difference from the baseline mean wherever a label fits.

The x axis is run time with idle stretches cut short: runs come in nights, and a day without runs
would otherwise take most of the width. Each cut is shaded and says how long it was.

matplotlib is imported inside `plot` only, so every other `lab` command stays as fast as before.
Headless: it draws on a bare `Figure` and renders the PNG with Agg; no GUI backend is ever loaded.
"""

from __future__ import annotations

import bisect
import io
import itertools
import statistics
from datetime import datetime, timedelta
from pathlib import Path

from lab import files, ledger
from lab.judge import verdicts
from lab.names import BASELINE_SLUGS

FIGSIZE = (12.0, 6.5)  # inches; with DPI a fixed 1440x780 image, whatever the data
DPI = 120
FAILED = tuple(s for s in ledger.STATUSES if s != "ok")
FAIL_COLOR = {"crash": "#d62728", "timeout": "#ff5c5c", "invalid": "#8b0000", "killed": "#c0504d"}
BASE_COLOR = "#8c8c8c"
# tab10 without its red (failures) and grey (baseline): every experiment colour differs from both.
SLUG_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
LEGEND_SLUGS = 10  # slugs named in the legend; the rest share one "+N more slugs" line
# Where a frontier label may go, in points from its point, in order of preference: first just under the
# step line after it, where no kept run can be (it would have been a lower best), then mirrored above.
LABEL_OFFSETS = ((7, -12), (7, -27))
MIN_GAP_H = 2.0  # hours without a run before the x axis cuts the stretch short
_EPOCH = datetime(1970, 1, 1)
_TICK_STEPS_MIN = (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)


def comparable(row: dict[str, str], base: dict) -> bool:
    return verdicts.key(row) == verdicts.key(base["key"])


def _hours(value: str) -> float:
    """Hours since 1970 of a ledger time; fromisoformat is ~30x faster than strptime on 10k rows."""
    return (datetime.fromisoformat(value.removesuffix("Z")) - _EPOCH).total_seconds() / 3600


def frontier(rows: list[dict[str, str]], kept: set[str] | None = None,
             base: dict | None = None) -> list[dict[str, str]]:
    """The ok rows that lowered the best val_bpb so far, oldest first.

    Candidates are the ok rows of `kept` slugs (every experiment slug when None) that are comparable
    with the baseline setting, as for `lab status`'s best: a run on another budget, eval or data is
    no improvement. With a baseline the frontier starts at its mean, so a change that is worse than
    the baseline never shows as progress.
    """
    best = base["mean"] if base else float("inf")
    steps = []
    candidates = [r for r in rows if r["status"] == "ok" and r["slug"] not in BASELINE_SLUGS
                  and (kept is None or r["slug"] in kept) and (base is None or comparable(r, base))]
    for row in sorted(candidates, key=lambda r: r["time"]):  # ISO times sort as text; sorted() is stable for ties
        if float(row["val_bpb"]) < best:
            best = float(row["val_bpb"])
            steps.append(row)
    return steps


class Timeline:
    """Run time (hours since 1970) -> x, with every idle stretch longer than the threshold cut short.

    Inside a stretch of runs x advances like time; a cut takes a fixed small width.
    """

    def __init__(self, hours: list[float]):
        ts = sorted(set(hours))
        steps = [b - a for a, b in itertools.pairwise(ts)]
        # Long runs (a 1 h budget) are spaced widely: only a pause several times the usual spacing is idle.
        self.min_gap = max(MIN_GAP_H, 4 * statistics.median(steps)) if steps else MIN_GAP_H
        groups = [[ts[0], ts[0]]]
        for t in ts[1:]:
            if t - groups[-1][1] > self.min_gap:
                groups.append([t, t])
            else:
                groups[-1][1] = t
        # Room around each stretch: a couple of run spacings, so a lone run is not on the cut's edge.
        pad = min(max(2 * statistics.median(steps) if steps else 0.0, 1 / 6), self.min_gap / 4)
        busy = sum(b - a + 2 * pad for a, b in groups)
        # All cuts together take at most ~12% of the width, each at most 4%: weeks of nights stay readable.
        self.cut = busy * min(0.04, 0.12 / max(len(groups) - 1, 1))
        self.segments: list[tuple[float, float, float]] = []  # (first hour, last hour, x of first hour), padded
        self.idle: list[float] = [c - b for (_, b), (c, _) in itertools.pairwise(groups)]  # hours between runs
        x = 0.0
        for a, b in groups:
            self.segments.append((a - pad, b + pad, x))
            x += (b - a) + 2 * pad + self.cut
        self.width = x - self.cut

    def x(self, hour: float) -> float:
        return self.xs([hour])[0]

    def xs(self, hours: list[float]) -> list[float]:
        starts = [s[0] for s in self.segments]
        out = []
        for h in hours:
            lo, _, x0 = self.segments[max(bisect.bisect_right(starts, h) - 1, 0)]
            out.append(x0 + (h - lo))
        return out

    def gaps(self) -> list[tuple[float, float, float]]:
        """(x left, x right, idle hours) of every cut."""
        return [(x0 + (b - a), x1, idle)
                for (a, b, x0), (_, _, x1), idle in zip(self.segments, self.segments[1:], self.idle, strict=False)]

    def ticks(self, max_ticks: int = 11) -> tuple[list[float], list[str]]:
        """Round clock times inside the segments; a tick names its date when the date changes."""
        step = next((s for s in _TICK_STEPS_MIN if self.width * 60 / s <= max_ticks), _TICK_STEPS_MIN[-1]) / 60
        min_sep = self.width / (max_ticks + 2)  # x distance that two labels need not to touch
        chosen: list[tuple[float, float]] = []  # (x, hour)
        for lo, hi, _ in self.segments:
            first = -(-lo // step) * step
            hours = [first + k * step for k in range(int((hi - first) // step) + 1)]
            # A stretch shorter than the step still gets one tick, on the hour nearest its middle.
            hours = hours or [min(max(round((lo + hi) / 2), lo), hi)]
            for h in hours:
                x = self.x(h)
                if not chosen or x - chosen[-1][0] >= min_sep:
                    chosen.append((x, h))
        labels, last = [], None
        for x, h in chosen:
            when = _EPOCH + timedelta(hours=h)
            label = when.strftime("%H:%M")
            # The date under the first tick, after every cut and wherever the day changes.
            if last is None or when.date() != last[1] or any(last[0] < g[0] < x for g in self.gaps()):
                label += when.strftime("\n%b %d")
            last = (x, when.date())
            labels.append(label)
        return [x for x, _ in chosen], labels


def plot(rows: list[dict[str, str]], out: Path, kept: set[str] | None = None, title: str = "",
         base: dict | None = None, headline: str = "") -> Path:
    """Draw `rows` (ledger rows, any order) as a PNG at `out`, replaced atomically; returns `out`.

    `kept`: slugs whose changes count towards the frontier (None: every experiment slug). `base`: the
    baseline (status.judged, main's train.py). `headline`: the effect size the subtitle leads with
    (status.best_line: a verdict's difference of means and interval, never a best seed).
    """
    from matplotlib.figure import Figure  # here, not at the top: importing matplotlib costs ~0.3 s

    out = Path(out)
    steps = frontier(rows, kept, base)
    failed = [r for r in rows if r["status"] != "ok"]
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    if failed:
        ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[7, 1])
    else:
        ax, strip = fig.add_subplot(), None
    fig.suptitle(title or "lab progress", x=0.01, ha="left", fontsize=13, fontweight="bold")
    ax.set_title(_summary(rows, headline), loc="left", fontsize=9, color="#444444")
    if rows:
        _draw(fig, ax, strip, rows, kept, base, steps)
    else:
        ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", va="center", fontsize=20, color="#777777")
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out)
    return out


def _draw(fig, ax, strip, rows, kept, base, steps) -> None:
    from matplotlib.lines import Line2D

    hours = [_hours(r["time"]) for r in rows]
    line = Timeline(hours)
    xs = line.xs(hours)
    bottom = strip if strip is not None else ax
    ax.set_xlim(-line.cut * 0.25, line.width + line.cut * 0.25)
    ticks, labels = line.ticks()
    bottom.set_xticks(ticks, labels, fontsize=8.5)
    bottom.set_xlabel("run time (UTC; hatched: idle stretches cut short)" if line.gaps() else "run time (UTC)")
    ax.set_ylabel("val_bpb (lower is better)")
    for a in (ax, strip) if strip is not None else (ax,):
        a.grid(True, color="#e6e6e6", linewidth=0.8)
        a.set_axisbelow(True)
        for left, right, _idle in line.gaps():
            a.axvspan(left, right, facecolor="#f2f2f2", edgecolor="#bbbbbb", hatch="//", linewidth=0, zorder=0)
    for left, right, idle in line.gaps() if len(line.gaps()) <= 8 else []:  # more would be a wall of text
        ax.text((left + right) / 2, 0.98, f"{idle:.0f} h idle" if idle >= 1.5 else f"{idle * 60:.0f} min idle",
                transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="top", fontsize=7, color="#555555",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"})
    handles: list = []

    ok = [(x, r) for x, r in zip(xs, rows, strict=True) if r["status"] == "ok"]
    lo, hi, cap = _y_range([float(r["val_bpb"]) for _, r in ok], base)
    span = hi - lo
    ax.set_ylim(lo - span * 0.12, hi + span * 0.08)  # room under the best run for its label
    if base:
        ax.axhspan(base["mean"] - base["std"], base["mean"] + base["std"], color=BASE_COLOR, alpha=0.18,
                   linewidth=0, zorder=1)
        ax.axhline(base["mean"], color=BASE_COLOR, linewidth=1.2, linestyle="--", zorder=2)
        handles.append((Line2D([], [], color=BASE_COLOR, linestyle="--", linewidth=6, alpha=0.35),
                        f"baseline {base['mean']:.4f} ± {base['std']:.4f} (n={base['n']})"))
    if ok:
        handles += _draw_ok(ax, ok, kept, cap, base)
    else:
        ax.text(0.5, 0.5, "no successful runs yet", transform=ax.transAxes, ha="center", va="center",
                fontsize=16, color="#777777")
        ax.set_yticks([])
    if steps:
        handles += _draw_frontier(ax, line, steps, base, kept, strip is not None)
    if strip is not None:
        handles += _draw_failed(strip, [(x, r) for x, r in zip(xs, rows, strict=True) if r["status"] != "ok"])
    # Outside the axes, on the right: a legend must never cover a run.
    fig.legend([h for h, _ in handles], [label for _, label in handles], loc="outside right upper",
               fontsize=8.5, frameon=False)


def _y_range(values: list[float], base: dict | None) -> tuple[float, float, float]:
    """(low, high, cap) of the y axis: every value up to `cap`; runs above it are drawn on the top edge.

    One diverged run (val_bpb 8 among 2.5s) would otherwise squash everything else into a line.
    The cap never cuts the low side: low values are the results.
    """
    if not values:
        return 0.0, 1.0, float("inf")
    cap = float("inf")
    if len(values) >= 8:
        q1, _, q3 = statistics.quantiles(values, n=4)
        cap = q3 + 4 * max(q3 - q1, 1e-3)
    shown = [v for v in values if v <= cap]
    lo, hi = min(shown), max(shown)
    if base:
        lo, hi = min(lo, base["mean"] - base["std"]), max(hi, base["mean"] + base["std"])
    if hi - lo < 1e-3:  # one run, or identical values: give the axis a readable span
        lo, hi = lo - 0.01, hi + 0.01
    return lo, hi, cap


def _draw_ok(ax, ok: list[tuple[float, dict]], kept: set[str] | None, cap: float, base: dict | None) -> list:
    """One scatter call for all ok runs (fast on 10k rows); returns legend handles."""
    from matplotlib.lines import Line2D

    colour: dict[str, str] = {}
    for _, r in ok:  # colours by first appearance, so a slug keeps its colour as the ledger grows
        if r["slug"] not in BASELINE_SLUGS and r["slug"] not in colour:
            colour[r["slug"]] = SLUG_COLORS[len(colour) % len(SLUG_COLORS)]
    faces, edges, sizes = [], [], []
    for _, r in ok:
        c = BASE_COLOR if r["slug"] in BASELINE_SLUGS else colour[r["slug"]]
        # Hollow: another eval, data or budget than the baseline's, so not comparable with the band.
        foreign = base is not None and not comparable(r, base)
        # Pale: an experiment the caller did not keep (discarded changes stay visible, but quiet).
        quiet = kept is not None and r["slug"] not in BASELINE_SLUGS and r["slug"] not in kept
        faces.append("none" if foreign else c + ("40" if quiet else "dd"))
        edges.append(c + ("66" if quiet else "ff"))
        sizes.append(20 if r["slug"] in BASELINE_SLUGS else 30)
    ax.scatter([x for x, _ in ok], [min(float(r["val_bpb"]), cap) for _, r in ok], s=sizes, c=faces,
               edgecolors=edges, linewidths=0.8, zorder=3)
    above = [x for x, r in ok if float(r["val_bpb"]) > cap]
    if above:  # drawn at the top edge, pointing up: "off the chart", never silently dropped
        ax.scatter(above, [1.0] * len(above), transform=ax.get_xaxis_transform(), marker="^", s=40,
                   color="#444444", zorder=4, clip_on=False)

    handles = []
    if any(r["slug"] in BASELINE_SLUGS for _, r in ok):
        handles.append((Line2D([], [], marker="o", linestyle="", color=BASE_COLOR, markersize=5), "baseline runs"))
    named = list(colour)[:LEGEND_SLUGS]
    for s in named:
        quiet = kept is not None and s not in kept
        handles.append((Line2D([], [], marker="o", linestyle="", color=colour[s], markersize=6,
                               alpha=0.4 if quiet else 1.0), s + (" (not kept)" if quiet else "")))
    if len(colour) > len(named):
        handles.append((Line2D([], [], linestyle=""), f"+{len(colour) - len(named)} more slugs"))
    if base is not None and any(not comparable(r, base) for _, r in ok):
        handles.append((Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="#555555",
                               markersize=6), "other eval/data/budget"))
    if above:
        handles.append((Line2D([], [], marker="^", linestyle="", color="#444444", markersize=6),
                        f"above the y range ({len(above)})"))
    return handles


def _draw_frontier(ax, line: Timeline, steps: list[dict[str, str]], base: dict | None, kept: set[str] | None,
                   with_strip: bool) -> list:
    """The running minimum as a step line to the right edge, a circle on each improvement."""
    from matplotlib.lines import Line2D

    xs = line.xs([_hours(r["time"]) for r in steps])
    ys = [float(r["val_bpb"]) for r in steps]
    lx, ly = ([xs[0]] + xs, [base["mean"]] + ys) if base else (xs, ys)  # from the baseline mean down
    ax.step(lx + [line.width], ly + [ly[-1]], where="post", color="#111111", linewidth=1.8, zorder=5)
    ax.scatter(xs, ys, s=70, facecolors="none", edgecolors="#111111", linewidths=1.6, zorder=6)
    _label_frontier(ax, line, xs, ys, steps, base, with_strip)
    return [(Line2D([], [], color="#111111", linewidth=1.8, marker="o", markerfacecolor="none"),
             "best so far" if kept is None else "best so far (kept slugs)")]


def _label_frontier(ax, line: Timeline, xs: list[float], ys: list[float], steps: list[dict[str, str]],
                    base: dict | None, with_strip: bool) -> None:
    """Slug labels for frontier improvements, placed greedily so that no two overlap.

    The latest best is placed first, then the others by the size of their drop; a label that finds no
    free place is left out (its circle on the step line remains). Overlap is judged in points, from
    the fixed figure size: the axes take ~75% of its width and ~70% of its height (~60% above a strip).
    """
    xmin, xmax = ax.get_xlim()
    ymin, ymax = ax.get_ylim()
    px = FIGSIZE[0] * 72 * 0.75 / (xmax - xmin)  # points per x unit
    py = FIGSIZE[1] * 72 * (0.6 if with_strip else 0.7) / (ymax - ymin)  # points per y unit
    before = [base["mean"] if base else float("inf")] + ys[:-1]
    order = [len(steps) - 1] + sorted(range(len(steps) - 1), key=lambda i: ys[i] - before[i])
    # Boxes in points (left, bottom, right, top) a label must not cover: the frontier's circles, then labels.
    placed = [(x * px - 6, y * py - 6, x * px + 6, y * py + 6) for x, y in zip(xs, ys, strict=True)]
    for i in order:
        if i + 1 < len(steps) and steps[i + 1]["slug"] == steps[i]["slug"]:
            continue  # several seeds of one slug in a row: one label, on the lowest, which comes last
        text = steps[i]["slug"] + (f"  {ys[i] - base['mean']:+.3f}" if base else f"  {ys[i]:.3f}")
        width, height = len(text) * 4.9 + 6, 13  # 8 pt DejaVu Sans averages under 4.9 pt a character
        right = xs[i] > line.width * 0.8  # near the right edge the label goes to the left of its point
        x0, y0 = xs[i] * px, ys[i] * py
        for dx, dy in LABEL_OFFSETS + tuple((dx, -dy) for dx, dy in LABEL_OFFSETS):
            left = x0 - dx - width if right else x0 + dx
            box = (left, y0 + dy - height / 2, left + width, y0 + dy + height / 2)
            inside = box[1] >= ymin * py + 2 and box[3] <= ymax * py - 2
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                placed.append(box)
                ax.annotate(text, (xs[i], ys[i]), xytext=(-dx if right else dx, dy), textcoords="offset points",
                            ha="right" if right else "left", va="center", fontsize=8, color="#111111", zorder=7,
                            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "#cccccc",
                                  "linewidth": 0.5, "alpha": 0.9},
                            arrowprops={"arrowstyle": "-", "color": "#888888", "linewidth": 0.6,
                                        "shrinkA": 0, "shrinkB": 4})
                break


def _draw_failed(strip, failed: list[tuple[float, dict]]) -> list:
    """One lane per failure status that occurs, crosses at the run's time; returns legend handles."""
    from matplotlib.lines import Line2D

    present = [s for s in FAILED if any(r["status"] == s for _, r in failed)]
    handles = []
    for lane, status in enumerate(present):
        xs = [x for x, r in failed if r["status"] == status]
        strip.scatter(xs, [lane] * len(xs), marker="x", s=30, linewidths=1.4, color=FAIL_COLOR[status], zorder=3)
        handles.append((Line2D([], [], marker="x", linestyle="", color=FAIL_COLOR[status], markersize=7,
                               markeredgewidth=1.4), f"{status} ({len(xs)})"))
    strip.set_yticks(range(len(present)), present, fontsize=8)
    strip.set_ylim(-0.7, len(present) - 0.3)
    strip.tick_params(axis="y", length=0)
    return handles


def _summary(rows: list[dict[str, str]], headline: str) -> str:
    ok = sum(r["status"] == "ok" for r in rows)
    parts = [f"{len(rows)} run{'' if len(rows) == 1 else 's'}: {ok} ok, {len(rows) - ok} failed"]
    if headline:
        parts.append(headline)
    if rows:
        parts.append(f"last run {max(r['time'] for r in rows).replace('T', ' ').removesuffix('Z')} UTC")
    return " · ".join(parts)


def _save(fig, out: Path) -> None:
    """Render to memory, then lab.files' temp file beside `out` + rename: a reader never sees half an image.

    Rendering first means a drawing error leaves no temp file at all; lab.files removes its own on error.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    try:
        files.replace(out, buf.getvalue())  # keeps an existing plot's permission bits
    except FileNotFoundError:
        if not out.parent.is_dir():
            raise
        files.write_new(out, buf.getvalue())  # the first plot: created by a link, never half-written either
