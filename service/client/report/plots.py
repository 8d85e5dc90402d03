"""The report's figures, drawn from the API's trial dicts into PNG bytes.

Matplotlib is used through its object API with an Agg canvas attached to every figure, so the
report never touches pyplot's global state nor the caller's chosen backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from service.client.report.importance import final_metric as metric
from service.client.report.importance import param_importances
from studies.analysis import Level, Summary, effects, summarize
from studies.catalog import FAMILIES, FAMILIES_WITH_P
from studies.schedules import DecaySchedule, ScheduleError

Trial = Mapping[str, Any]
Curves = Mapping[int, Mapping[str, Sequence[tuple[int, float | None]]]]
DPI = 120
FAMILY_COLOURS = {
    "none": "#7f7f7f",
    "l2": "#ff7f0e",
    "decoupled": "#1f77b4",
    "pwd": "#2ca02c",
    "lp_coupled": "#9467bd",
}
SCHEDULES = ("none", "full", "early", "late")
SCHEDULE_COLOURS = {"none": "#7f7f7f", "full": "#1f77b4", "early": "#2ca02c", "late": "#d62728"}
FALLBACK_COLOURS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf")
# at most this many distinct p values are shown one by one; more are bucketed
MAX_P_LEVELS = 8
P_BUCKETS = 6
MAX_FAMILY_ROWS = 4


@dataclass(frozen=True)
class Plot:
    """One figure of the report: its PNG, or the note saying why it was left out."""

    name: str
    title: str
    caption: str
    png: bytes | None = None
    note: str | None = None


def colour(kind: Mapping[str, str], name: str, order: Sequence[str]) -> str:
    """A fixed colour per family or schedule name; unknown names get spare ones."""
    if name in kind:
        return kind[name]
    extra = sorted(n for n in order if n not in kind)
    return FALLBACK_COLOURS[extra.index(name) % len(FALLBACK_COLOURS)] if name in extra else "k"


def ordered(names: Iterable[str], canonical: Sequence[str]) -> list[str]:
    """Distinct names, in the catalog's order first, then any others alphabetically."""
    seen = set(names)
    return [n for n in canonical if n in seen] + sorted(seen - set(canonical))


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _pct(value: float) -> float:
    return 100.0 * value


# ---------------------------------------------------------------- accuracy against sparsity


def accuracy_vs_sparsity(trials: Sequence[Trial], front: Sequence[Trial]) -> Plot:
    """Validation accuracy against sparsity, one colour per family, the Pareto front ringed."""
    title = "Validation accuracy against sparsity"
    shown = [
        t for t in trials if metric(t, "val_acc") is not None and metric(t, "sparsity") is not None
    ]
    caption = (
        f"Each dot is one completed trial (n={len(shown)}), coloured by regularizer family; "
        "the ringed, connected trials are the Pareto front (no trial is both more accurate "
        "and sparser)."
    )
    if not shown:
        return Plot(
            "accuracy_vs_sparsity",
            title,
            caption,
            note="no completed trial reports both val_acc and sparsity yet",
        )
    figure = new_figure(7.5, 5.2)
    ax = figure.add_subplot()
    _family_dots(ax, shown)
    _draw_front(ax, front)
    ax.set(
        title=title,
        xlabel="sparsity: decayed weights with |w| < 1e-6 (%)",
        ylabel="validation accuracy (%)",
    )
    ax.grid(alpha=0.3)
    ax.legend(title="family", loc="best", fontsize=9)
    return Plot("accuracy_vs_sparsity", title, caption, png=png_bytes(figure))


def _family_dots(ax: Axes, shown: Sequence[Trial]) -> None:
    families = ordered((str(t.get("family")) for t in shown), FAMILIES)
    for family in families:
        group = [t for t in shown if str(t.get("family")) == family]
        ax.scatter(
            [_pct(metric(t, "sparsity") or 0) for t in group],
            [_pct(metric(t, "val_acc") or 0) for t in group],
            s=30,
            alpha=0.75,
            color=colour(FAMILY_COLOURS, family, families),
            label=f"{family} (n={len(group)})",
            zorder=2,
        )


def _draw_front(ax: Axes, front: Sequence[Trial]) -> None:
    points = sorted(
        (_pct(metric(t, "sparsity") or 0), _pct(metric(t, "val_acc") or 0), t["number"])
        for t in front
        if metric(t, "sparsity") is not None and metric(t, "val_acc") is not None
    )
    if not points:
        return
    xs, ys = [x for x, _, _ in points], [y for _, y, _ in points]
    ax.plot(xs, ys, "-", color="black", lw=1.2, zorder=3)
    ax.scatter(
        xs,
        ys,
        s=140,
        facecolors="none",
        edgecolors="black",
        lw=1.6,
        zorder=4,
        label=f"Pareto front ({len(points)})",
    )
    for x, y, number in points:
        ax.annotate(f"#{number}", (x, y), xytext=(6, 5), textcoords="offset points", fontsize=8)


# ---------------------------------------------------------------- effect of p


def p_levels(ps: Sequence[float], values: Sequence[float]) -> list[tuple[float, Summary]]:
    """(x position, summary) per p level: each distinct p when few, else equal-width buckets."""
    if len(set(ps)) <= MAX_P_LEVELS:
        levels = effects(ps, values, scale="category")
        return sorted((float(lv.level), lv.summary) for lv in levels)
    buckets: list[Level] = effects(ps, values, scale="linear", buckets=P_BUCKETS)
    return [((lv.low or 0.0) / 2 + (lv.high or 0.0) / 2, lv.summary) for lv in buckets]


def p_effects(trials: Sequence[Trial]) -> Plot:
    """Sparsity and validation accuracy against p: mean and 95% CI per p level, trials behind."""
    title = "Sparsity and accuracy against p"
    with_p = [t for t in trials if t.get("p") is not None and t.get("family") in FAMILIES_WITH_P]
    distinct = {float(t["p"]) for t in with_p}
    caption = (
        "Mean ± 95% confidence interval over seeds and trials per p level (p values grouped into "
        f"{P_BUCKETS} equal-width buckets when more than {MAX_P_LEVELS} distinct), trials as "
        "faint dots; horizontal bands: families without p (mean ± 95% CI)."
    )
    if len(distinct) < 2:
        note = (
            "no completed trial has p"
            if not distinct
            else (f"p was not varied (every trial has p = {min(distinct):g})")
        )
        return Plot("p_effects", title, caption, note=note)
    figure = new_figure(12, 4.8)
    panels = (
        ("sparsity", "sparsity: decayed weights with |w| < 1e-6 (%)"),
        ("val_acc", "validation accuracy (%)"),
    )
    for index, (name, label) in enumerate(panels):
        ax = figure.add_subplot(1, 2, index + 1)
        _p_panel(ax, with_p, name)
        _reference_bands(ax, trials, name)
        short = "Sparsity" if name == "sparsity" else "Validation accuracy"
        ax.set(title=f"{short} against p", xlabel="p (norm exponent of the decay)", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    return Plot("p_effects", title, caption, png=png_bytes(figure))


def _p_panel(ax: Axes, trials: Sequence[Trial], name: str) -> None:
    families = ordered((str(t["family"]) for t in trials), FAMILIES)
    for family in families:
        pairs = [
            (float(t["p"]), v)
            for t in trials
            if str(t["family"]) == family and (v := metric(t, name)) is not None
        ]
        if not pairs:
            continue
        tint = colour(FAMILY_COLOURS, family, families)
        ax.scatter(
            [p for p, _ in pairs], [_pct(v) for _, v in pairs], s=14, alpha=0.3, color=tint, lw=0
        )
        levels = p_levels([p for p, _ in pairs], [v for _, v in pairs])
        xs = [x for x, _ in levels]
        means = [_pct(s.mean or 0.0) for _, s in levels]
        low = [
            m - _pct(s.ci_low) if s.ci_low is not None else 0.0
            for m, (_, s) in zip(means, levels, strict=True)
        ]
        high = [
            _pct(s.ci_high) - m if s.ci_high is not None else 0.0
            for m, (_, s) in zip(means, levels, strict=True)
        ]
        ax.errorbar(
            xs,
            means,
            yerr=[low, high],
            fmt="o-",
            color=tint,
            capsize=4,
            lw=1.8,
            ms=6,
            label=f"{family}: mean ± 95% CI",
        )


def _reference_bands(ax: Axes, trials: Sequence[Trial], name: str) -> None:
    others = [t for t in trials if t.get("family") not in FAMILIES_WITH_P]
    families = ordered((str(t.get("family")) for t in others), FAMILIES)
    for family in families:
        values = [
            v
            for t in others
            if str(t.get("family")) == family and (v := metric(t, name)) is not None
        ]
        if not values:
            continue
        summary, tint = summarize(values), colour(FAMILY_COLOURS, family, families)
        ax.axhline(
            _pct(summary.mean or 0.0),
            color=tint,
            ls="--",
            lw=1.2,
            label=f"{family} (no p, n={summary.count})",
        )
        if summary.ci_low is not None and summary.ci_high is not None:
            ax.axhspan(_pct(summary.ci_low), _pct(summary.ci_high), color=tint, alpha=0.12, lw=0)


# ---------------------------------------------------------------- curves by schedule


def switch_epoch(trial: Trial, epochs: int) -> float | None:
    """Where an early trial stops decaying (until·epochs) or a late one starts (from·epochs),
    as a point on the epoch axis (not rounded to a step)."""
    try:
        fraction = DecaySchedule.from_params(trial).switch_fraction
    except ScheduleError:  # a trial without a schedule (family none) or a partial row
        return None
    return None if fraction is None else float(fraction) * epochs


def mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, Summary]]:
    """Per epoch, the summary of the values the curves have there."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve:
            by_epoch.setdefault(epoch, []).append(value)
    return [(epoch, summarize(by_epoch[epoch])) for epoch in sorted(by_epoch)]


CURVE_PANELS = (
    ("val_acc", "validation accuracy (%)", True),
    ("weight_norm", "weight norm ‖w‖₂ of decayed weights", False),
)


def curves_by_schedule(trials: Sequence[Trial], curves: Curves, epochs: int) -> Plot:
    """Validation accuracy and weight norm per epoch, one row per family, a colour per schedule."""
    title = "Training curves by decay schedule"
    drawn = [t for t in trials if any(_curve(curves, t, n) for n, _, _ in CURVE_PANELS)]
    caption = (
        "Per epoch, the mean over trials (thick line) with a band of ± one standard error and "
        "each trial as a thin line, one colour per decay schedule; dotted verticals mark where an "
        "early schedule stops decaying (until·epochs) and a late one starts (from·epochs)."
    )
    if not drawn:
        return Plot(
            "curves_by_schedule",
            title,
            caption,
            note="no completed trial has recorded val_acc or weight_norm curves",
        )
    families = ordered((str(t.get("family")) for t in drawn), FAMILIES)[:MAX_FAMILY_ROWS]
    figure = new_figure(12, 0.6 + 3.7 * len(families))
    for row, family in enumerate(families):
        group = [t for t in drawn if str(t.get("family")) == family]
        for column, (name, label, percent) in enumerate(CURVE_PANELS):
            ax = figure.add_subplot(len(families), 2, 2 * row + column + 1)
            _schedule_panel(ax, group, curves, name, percent, epochs)
            ax.set(title=f"{family}: {label.split(' (')[0]}", xlabel="epoch", ylabel=label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    _curve_legend(figure, drawn)
    return Plot("curves_by_schedule", title, caption, png=png_bytes(figure))


def _curve(curves: Curves, trial: Trial, name: str) -> list[tuple[int, float]]:
    points = (curves.get(int(trial["number"])) or {}).get(name) or []
    return [(int(e), float(v)) for e, v in points if v is not None and math.isfinite(v)]


def _schedule_panel(
    ax: Axes, trials: Sequence[Trial], curves: Curves, name: str, percent: bool, epochs: int
) -> None:
    scale = 100.0 if percent else 1.0
    schedules = ordered((str(t.get("schedule")) for t in trials), SCHEDULES)
    for schedule in schedules:
        tint = colour(SCHEDULE_COLOURS, schedule, schedules)
        group = [t for t in trials if str(t.get("schedule")) == schedule]
        lines = [c for t in group if (c := _curve(curves, t, name))]
        for line in lines:
            ax.plot(
                [e for e, _ in line], [scale * v for _, v in line], color=tint, lw=0.6, alpha=0.3
            )
        if lines:
            _mean_with_band(ax, mean_curve(lines), tint, scale)
        for x in sorted({round(s, 2) for t in group if (s := switch_epoch(t, epochs))}):
            ax.axvline(x, color=tint, ls=":", lw=1.3, alpha=0.9)


def _mean_with_band(
    ax: Axes, mean: Sequence[tuple[int, Summary]], tint: str, scale: float
) -> None:
    ax.plot([e for e, _ in mean], [scale * (s.mean or 0.0) for _, s in mean], color=tint, lw=2.2)
    # ± one standard error: a t-interval over two seeds is ±12.7 s.e. and would hide the curves
    banded = [(e, s.mean or 0.0, standard_error(s)) for e, s in mean if s.std is not None]
    if banded:
        ax.fill_between(
            [e for e, _, _ in banded],
            [scale * (m - se) for _, m, se in banded],
            [scale * (m + se) for _, m, se in banded],
            color=tint,
            alpha=0.2,
            lw=0,
        )


def standard_error(summary: Summary) -> float:
    """The standard error of a summary's mean (0 without a standard deviation)."""
    return 0.0 if summary.std is None else summary.std / math.sqrt(summary.count)


def _curve_legend(figure: Figure, trials: Sequence[Trial]) -> None:
    schedules = ordered((str(t.get("schedule")) for t in trials), SCHEDULES)
    handles = [
        Line2D(
            [],
            [],
            color=colour(SCHEDULE_COLOURS, s, schedules),
            lw=2.2,
            label=f"{s} (n={sum(str(t.get('schedule')) == s for t in trials)})",
        )
        for s in schedules
    ]
    handles.append(Line2D([], [], color="black", ls=":", lw=1.3, label="switch point"))
    figure.legend(
        handles=handles,
        loc="outside upper center",
        ncols=len(handles),
        title="decay schedule (trials)",
        fontsize=9,
    )


# ---------------------------------------------------------------- parameter importance


def importance(spec: Mapping[str, Any], trials: Sequence[Trial]) -> Plot:
    """fANOVA importances of the searched parameters for each objective (up to two)."""
    title = "Parameter importance"
    objectives = [(o["metric"], o["mode"]) for o in spec.get("objectives", [])][:2]
    caption = (
        "fANOVA importance (Optuna, random-forest fANOVA, seed 0) of each searched parameter "
        "for each objective over the completed trials, normalized to sum to 1; parameters set "
        "in only some trials (conditional ones) are left out."
    )
    results = [(m, param_importances(spec.get("space", {}), trials, m, d)) for m, d in objectives]
    computed = [(m, r) for m, r in results if isinstance(r, dict)]
    if not computed:
        note = results[0][1] if results else "the study has no objectives"
        return Plot("importance", title, caption, note=str(note))
    figure = new_figure(5.2 * len(computed), 0.9 + 0.45 * max(len(r) for _, r in computed))
    for index, (name, scores) in enumerate(computed):
        ax = figure.add_subplot(1, len(computed), index + 1)
        names = sorted(scores, key=lambda n: scores[n])
        ax.barh(names, [scores[n] for n in names], color="#4c72b0")
        for y, n in enumerate(names):
            ax.annotate(
                f"{scores[n]:.2f}",
                (scores[n], y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.set(
            title=f"importance for {name}",
            xlabel="fANOVA importance (fraction of variance)",
            xlim=(0, 1.1),
        )
        ax.grid(axis="x", alpha=0.3)
    return Plot("importance", title, caption, png=png_bytes(figure))


# ---------------------------------------------------------------- final |w| histogram

SPARSITY_DECADE = -6  # log10 of the sparsity threshold


def weight_histograms(shown: Sequence[tuple[Trial, Mapping[str, Any]]]) -> Plot:
    """log10|w| of the decayed weights at the end, one bar series per trial, zeros apart."""
    title = "Final weight magnitudes: best pWD against best decoupled"
    caption = (
        "Share of decayed weights per decade of |w| after the last epoch, for the most accurate "
        "completed pWD trial (with p < 1 where there is one) and decoupled (AdamW) trial; the "
        "hatched bar left of the axis break counts exact "
        "zeros, the dotted line is the 1e-6 sparsity threshold. pWD with p < 1 drives weights "
        "geometrically towards zero: a second mode far below 1e-6 (the pWD paper's picture)."
    )
    shown = [(t, h) for t, h in shown if h.get("total")]
    if not shown:
        note = "no completed pWD or decoupled trial has recorded its final |w| histogram"
        return Plot("weight_histogram", title, caption, note=note)
    low, high = _histogram_span([h for _, h in shown])
    figure = new_figure(10, 4.8)
    ax = figure.add_subplot()
    width = 0.8 / len(shown)
    for index, (trial, histogram) in enumerate(shown):
        _histogram_bars(ax, trial, histogram, (low, high), width, index - (len(shown) - 1) / 2)
    zero_at = low - 2
    step = 3 if high - low <= 24 else 6  # multiples of 3 keep 1e-6 and 1e0 on the axis
    ticks = [zero_at, *(t for t in range(low, high + 1) if t % step == 0)]
    ax.set_xticks(ticks, ["0"] + [f"1e{t}" for t in ticks[1:]], rotation=45, fontsize=8)
    ax.axvline(low - 1, color="#999", lw=0.8, ls="-")
    ax.axvline(SPARSITY_DECADE, color="black", ls=":", lw=1.3, label="sparsity threshold 1e-6")
    ax.set(title=title, xlabel="|w| (decade; '0' = exact zeros)", ylabel="decayed weights (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return Plot("weight_histogram", title, caption, png=png_bytes(figure))


def _histogram_span(histograms: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """The decades from the lowest filled bin (at most 1e-8) to the highest filled one."""
    filled = [
        int(h["edges"][i]) for h in histograms for i, count in enumerate(h["counts"]) if count
    ]
    return min([*filled, SPARSITY_DECADE - 2]), max([*filled, 0]) + 1


def _histogram_bars(
    ax: Axes,
    trial: Trial,
    histogram: Mapping[str, Any],
    span: tuple[int, int],
    width: float,
    offset: float,
) -> None:
    total, family = float(histogram["total"]), str(trial.get("family"))
    edges, counts = histogram["edges"], histogram["counts"]
    xs = [int(e) + 0.5 + offset * width for e in edges[:-1]]
    shares = [_pct(c / total) for c in counts]
    kept = [(x, s) for x, s, e in zip(xs, shares, edges, strict=False) if span[0] <= e < span[1]]
    below = metric(trial, "sparsity")
    label = (
        f"{family} #{trial['number']}"
        + (f" p={trial['p']:g}" if trial.get("p") is not None else "")
        + (f" λ={trial['lambda']:.3g}" if trial.get("lambda") is not None else "")
        + (f": {_pct(below):.1f}% below 1e-6" if below is not None else "")
    )
    tint = FAMILY_COLOURS.get(family, "k")
    ax.bar([x for x, _ in kept], [s for _, s in kept], width=width, color=tint, label=label)
    zero_share = _pct(histogram["zeros"] / total)
    ax.bar([span[0] - 2 + offset * width], [zero_share], width=width, color=tint, hatch="//")
