"""The stage contract: a small callable class over a batch (a dict of equal-length column lists).

Why: stages must be testable on a plain dict without Ray, and a bad row must never crash a run
nor disappear. ``Stage.__call__`` gives every stage that behaviour once:

* rows that an earlier stage already rejected (``error`` set) pass through untouched;
* ``process(batch)`` sees only live rows and returns the output rows (it may return more rows than it
  got, e.g. VAD segmentation, or mark rows bad with :func:`reject`);
* if ``process`` raises on a whole batch, the batch is retried row by row, so one corrupt file only
  rejects its own row, with the exception as the reason.

``__init__`` loads models once per worker (Ray actor); ``__call__`` must not reload them.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from slmfactory.manifests.schema import ERROR_COLUMN, ERROR_STAGE_COLUMN

Batch = dict[str, list[Any]]
log = logging.getLogger("slmfactory.stages")


def batch_len(batch: Mapping[str, Any]) -> int:
    for v in batch.values():
        return len(v)
    return 0


def to_rows(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = list(batch)
    n = batch_len(batch)
    cols = [list(batch[k]) for k in names]
    return [{k: cols[j][i] for j, k in enumerate(names)} for i in range(n)]


def from_rows(rows: list[dict[str, Any]], like: Mapping[str, Any] | None = None) -> Batch:
    """Rows to columns; missing values become None. Column order: ``like``'s first, then new ones."""
    names: list[str] = list(like) if like is not None else []
    for r in rows:
        for k in r:
            if k not in names:
                names.append(k)
    return {k: [r.get(k) for r in rows] for k in names}


def reject(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    """Mark a row bad: it goes to OUT/errors with this stage and reason."""
    row[ERROR_COLUMN] = reason
    row[ERROR_STAGE_COLUMN] = stage
    return row


def is_rejected(row: Mapping[str, Any]) -> bool:
    return bool(row.get(ERROR_COLUMN))


class Stage:
    """Base class. Subclasses set ``name`` and implement ``process``."""

    name: str = "stage"

    def process(self, batch: Batch) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: Mapping[str, Any]) -> Batch:
        batch = {k: list(v) for k, v in batch.items()}
        n = batch_len(batch)
        if ERROR_COLUMN not in batch:
            batch[ERROR_COLUMN] = [None] * n
            batch[ERROR_STAGE_COLUMN] = [None] * n
        rows = to_rows(batch)
        live = [r for r in rows if not is_rejected(r)]
        dead = [r for r in rows if is_rejected(r)]
        out_rows: list[dict[str, Any]] = []
        if live:
            try:
                out_rows = to_rows(self.process(from_rows(live, batch)))
            except Exception as e:  # noqa: BLE001 - isolate the bad row below
                if len(live) == 1:
                    out_rows = [reject(dict(live[0]), self.name, _reason(e))]
                else:
                    log.debug("stage %s failed on a batch of %d, retrying row by row: %s", self.name, len(live), e)
                    for r in live:
                        try:
                            out_rows.extend(to_rows(self.process(from_rows([r], batch))))
                        except Exception as e1:  # noqa: BLE001
                            out_rows.append(reject(dict(r), self.name, _reason(e1)))
        for r in out_rows:
            r.setdefault(ERROR_COLUMN, None)
            r.setdefault(ERROR_STAGE_COLUMN, None)
        rows_out = out_rows + dead
        if "_seq" in batch:  # outputs stay in the order of the inputs they came from (runner relies on it)
            rows_out.sort(key=lambda r: r["_seq"])
        return from_rows(rows_out, batch)


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
