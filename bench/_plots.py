"""PNG plots for the benchmark report: failover-time distributions as a :class:`Plot`.

A benchmark may return :class:`Plot` objects beside its
:class:`bench._report.Result` figures; ``bench.run_all`` embeds them in the
module's section of ``docs/benchmarks.md``. :func:`failover_plot` draws one
empirical CDF per series (fault kind): the share of runs whose failover took at
most the time on the x axis, each run a point on its curve, median and p99
(:mod:`tests.helpers.stats`, as in the tables) in the legend, and the target as a vertical
line. matplotlib runs on its non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from tests.helpers.stats import median, percentile

ROOT = Path(__file__).resolve().parent.parent
#: Where :func:`failover_plot` writes unless told otherwise: ``docs/benchmarks/``
#: (``bench.run_all`` points it elsewhere when it leaves the docs alone).
OUTPUT_DIR = ROOT / "docs" / "benchmarks"
#: Size of a plot: 8 x 4.5 inches at 100 dpi (800 x 450 pixels).
FIGSIZE = (8.0, 4.5)
DPI = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class Plot:
    """One PNG written for the report.

    Attributes:
        name: the file stem (``<name>.png``).
        caption: one line of markdown text saying what the plot shows, with
            its figures (shown under the image and as its alt text).
        path: the PNG written.
    """

    name: str
    caption: str
    path: Path


def _shown(value: float, unit: str) -> str:
    """A time with its unit, fewer decimals for larger values; ``never`` for infinity."""
    if math.isinf(value):
        return "never"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.1f} {unit}" if abs(value) >= 10 else f"{value:.2f} {unit}"


def _figures(kind: str, ordered: Sequence[float], unit: str) -> str:
    """``<kind>: n=20, median 183 ms, p99 612 ms[, 2 never]`` of sorted values."""
    never = sum(math.isinf(v) for v in ordered)
    text = (
        f"{kind}: n={len(ordered)}, median {_shown(median(ordered), unit)}, "
        f"p99 {_shown(percentile(ordered, 99), unit)}"
    )
    return text + (f", {never} never" if never else "")


def failover_plot(
    name: str,
    title: str,
    series: Mapping[str, Sequence[float]],
    *,
    unit: str = "s",
    target: float | None = None,
    target_label: str | None = None,
    out_dir: Path | None = None,
) -> Plot:
    """Write ``<out_dir>/<name>.png``: the distribution of failover times per fault kind.

    Args:
        name: file stem, letters, digits, ``_``, ``.`` and ``-`` only.
        title: what was measured, from what to what (the plot's title and the
            start of its caption).
        series: fault kind to its failover times in ``unit``, one per run;
            ``math.inf`` is a run that never failed over (it counts in n, the
            median and p99, so its curve stops short of 100 %); ``nan`` is
            dropped. A kind with no values is left out.
        unit: unit of the times (x axis).
        target: drawn as a vertical dashed line, if given.
        target_label: the line's legend text (default ``target <target> <unit>``),
            e.g. ``target: median <= 250 ms``.
        out_dir: folder of the PNG (created); default :data:`OUTPUT_DIR`.

    Returns:
        The :class:`Plot`; its caption lists n, median and p99 per kind, or
        says there was no data (the PNG then says so too).
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a file stem: {name!r}")
    folder = OUTPUT_DIR if out_dir is None else out_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    kept = {kind: sorted(v for v in values if not math.isnan(v)) for kind, values in series.items()}
    kept = {kind: values for kind, values in kept.items() if values}
    one_line = " ".join(title.split())
    target_text = "" if target is None else target_label or f"target {target:g} {unit}"

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        ax.set_title(textwrap.fill(one_line, 95), fontsize=10)
        if not kept:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=14, color="grey")
            ax.set_axis_off()
            caption = f"{one_line}: no data."
        else:
            finite = [v for values in kept.values() for v in values if math.isfinite(v)]
            right = max([*finite, target if target is not None else 0.0, 0.0]) * 1.08 or 1.0
            for kind, values in kept.items():
                n = len(values)
                done = [v for v in values if math.isfinite(v)]
                ys = [(i + 1) / n for i in range(len(done))]
                (line,) = ax.step(
                    [0.0, *done, right],
                    [0.0, *ys, ys[-1] if ys else 0.0],
                    where="post",
                    label=_figures(kind, values, unit),
                )
                ax.plot(done, ys, "o", markersize=3.5, color=line.get_color())
            if target is not None:
                ax.axvline(
                    target, color="crimson", linestyle="--", linewidth=1.2, label=target_text
                )
            for level, text in ((0.5, "median"), (0.99, "p99")):
                ax.axhline(level, color="grey", linestyle=":", linewidth=0.8)
                ax.annotate(
                    text,
                    (1.0, level),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color="grey",
                )
            ax.set_xlim(0.0, right)
            ax.set_ylim(0.0, 1.03)
            ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0], ["0", "25 %", "50 %", "75 %", "100 %"])
            ax.set_xlabel(f"failover time ({unit})")
            ax.set_ylabel("share of runs failed over within")
            ax.grid(alpha=0.3)
            entries = len(kept) + (target is not None)
            ax.legend(  # below the axes: curves fill any corner inside
                loc="upper center",
                bbox_to_anchor=(0.5, -0.16),
                ncol=1 if entries == 1 else 2,
                fontsize=8.5,
                frameon=False,
            )
            caption = f"{one_line}: " + "; ".join(
                _figures(kind, values, unit) for kind, values in kept.items()
            )
            caption += f"; {target_text}." if target_text else "."
        fig.tight_layout()
        fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight")  # the legend whole
    finally:
        plt.close(fig)
    return Plot(name, caption, path)
