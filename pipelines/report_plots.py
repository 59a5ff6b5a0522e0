"""The plots of ``slmfactory report``: small matplotlib figures returned as inline PNG ``data:`` URIs.

Why PNG data URIs: the page must open anywhere without a network (no CDN, no fonts, no scripts), and a
~100 dpi PNG of a histogram is a few tens of kB, smaller than the same figure as SVG with its glyph paths.
Figures are built with ``matplotlib.figure.Figure`` (the Agg canvas, no pyplot): no display, no global state.
"""
from __future__ import annotations

import base64
import functools
import io
from typing import Sequence

import numpy as np

COLOR = "#3b6ea8"
ACCENT = "#d9822b"
SIZE = (5.2, 2.9)  # inches; at DPI that is ~520 x 290 px, two plots side by side on a 1200 px page
DPI = 100


STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10,
         "axes.titleweight": "bold"}


def _styled(fn):
    """Run a plot function under STYLE (``rc_context``: the caller's matplotlib settings are left alone)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)
    return wrapper


def _figure(size: tuple[float, float] = SIZE):
    """A figure and its axes, without pyplot: no global figure registry, no GUI backend, nothing to close."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots()


def _encode(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)  # Figure.savefig uses the Agg canvas: no display needed
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@_styled
def histogram(values: np.ndarray, title: str, xlabel: str, bins: int | None = None, log_y: bool = False,
              marks: Sequence[tuple[float, str]] = (), n: int | None = None, ylabel: str = "rows") -> str:
    """A histogram of ``values`` (count in the title, median marked); ``bins`` default: 2 sqrt(n) within
    [8, 50], so a dozen rows are not spread over 40 mostly empty bins; ``marks``: labelled vertical lines;
    ``n``: the count to show when ``values`` is a sample of the column."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    fig, ax = _figure()
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:  # one value: a narrow bar in a window around it, not one bar filling the axes
            lo, hi = lo - max(0.5, abs(lo) * 0.1), hi + max(0.5, abs(hi) * 0.1)
        bins = bins or int(np.clip(2 * np.sqrt(v.size), 8, 50))
        ax.hist(v, bins=bins, range=(lo, hi),
                color=COLOR, edgecolor="white", linewidth=0.4, log=log_y)
        med = float(np.median(v))
        ax.axvline(med, color=ACCENT, linestyle="--", linewidth=1)
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1}
        ax.text(med, ax.get_ylim()[1] * 0.97, f" median {med:.3g}", color=ACCENT, va="top", fontsize=8, bbox=box)
        for x, label in marks:
            lo_x, hi_x = ax.get_xlim()
            ax.set_xlim(min(lo_x, x - 0.02 * (hi_x - lo_x)), max(hi_x, x + 0.02 * (hi_x - lo_x)))
            ax.axvline(x, color="#a33", linewidth=1)
            ax.text(x, ax.get_ylim()[1] * 0.82, f" {label}", color="#a33", va="top", fontsize=8, bbox=box)
    ax.set_title(f"{title} (n={n if n is not None else v.size:,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _encode(fig)


@_styled
def bars(labels: Sequence[str], values: Sequence[float], title: str, ylabel: str, max_label: int = 18,
         second: Sequence[float] | None = None, legend: tuple[str, str] | None = None) -> str:
    """Vertical bars (one per label, labels shortened to ``max_label`` characters); ``second``: a second
    series beside the first (e.g. configured vs observed share), named by ``legend``."""
    n = len(labels)
    fig, ax = _figure((max(SIZE[0], min(11.0, 0.32 * n + 2)), SIZE[1]))
    x = np.arange(n)
    w = 0.4 if second is not None else 0.8
    ax.bar(x - (w / 2 if second is not None else 0), values, width=w, color=COLOR,
           label=legend[0] if legend else None)
    if second is not None:
        ax.bar(x + w / 2, second, width=w, color=ACCENT, label=legend[1] if legend else None)
        ax.legend(frameon=False, fontsize=8)
    short = [s if len(s) <= max_label else s[: max_label - 1] + "…" for s in map(str, labels)]
    tilt = n * max(map(len, short), default=0) > 60  # labels that would collide side by side
    ax.set_xticks(x, short, rotation=40 if tilt else 0, ha="right" if tilt else "center", fontsize=8)
    from matplotlib.ticker import EngFormatter, MaxNLocator

    if all(float(v).is_integer() for v in values):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2-row ticks

    if max(list(values) + list(second or []), default=0) >= 1e4:
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))  # 25M, not a "1e7" offset above the axis
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return _encode(fig)


@_styled
def zipf(counts: np.ndarray, title: str = "unit usage (Zipf)") -> str:
    """Rank-frequency of unit ids on log-log axes, with the ideal 1/rank line through the top unit: a
    collapsed vocabulary drops off a cliff, a healthy one bends gently."""
    c = np.sort(np.asarray(counts, dtype=np.float64)[np.asarray(counts) > 0])[::-1]
    fig, ax = _figure()
    if c.size:
        rank = np.arange(1, c.size + 1)
        ax.loglog(rank, c, marker=".", markersize=3, linewidth=1, color=COLOR, label="observed")
        ax.loglog(rank, c[0] / rank, linestyle=":", color=ACCENT, linewidth=1, label="1 / rank")
        ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"{title}: {c.size:,} distinct units")
    ax.set_xlabel("rank")
    ax.set_ylabel("occurrences")
    return _encode(fig)
