"""Training metrics: one JSON line per logged step (``metrics.jsonl``) and a PNG of the loss curves.

Why JSONL: appendable while training (``tail -f``), survives a crash line by line, and a resumed run cuts
the lines past its checkpoint so the file reads like one uninterrupted run. The plot (matplotlib, Agg
backend, no display needed) shows train and held-out loss against tokens seen.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"
PLOT = "metrics.png"


class MetricsLog:
    def __init__(self, out: Path, resume_step: int = 0):
        self.path = Path(out) / METRICS
        kept = []
        if self.path.exists():  # drop lines written after the checkpoint we resume from
            for line in self.path.read_text().splitlines():
                row = json.loads(line) if line.strip() else None
                if row and row.get("step", 0) <= resume_step and not row.get("final"):
                    kept.append(line)
        self.path.write_text("".join(f"{x}\n" for x in kept))
        self._f = open(self.path, "a")

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def plot_metrics(out: str | Path) -> Path | None:
    """``OUT/metrics.png``: train loss and held-out loss vs tokens; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = read_metrics(out)
    train = [(r["tokens"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["tokens"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="held-out loss")
    ax.set_xlabel("tokens")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(Path(out).name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(out) / PLOT
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
