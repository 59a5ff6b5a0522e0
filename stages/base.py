"""The stage contract: a small class that maps live rows to output rows.

Why: stages must be testable on plain data without Ray, and a bad row must never crash a run nor
disappear. The base class gives every stage that behaviour once, and converts data once each way:

* the executor hands a stage an Arrow table; :meth:`Stage.apply_table` turns it into row dicts once
  (numeric list columns such as waveforms and units become zero-copy numpy slices), and the rows the
  stage returns into one Arrow table once (declared types from ``manifests/schema.py``);
* ``process(rows)`` sees only live rows (rows an earlier stage rejected pass by untouched) and returns
  the output rows: the same dicts with columns added, more rows (VAD segmentation) or rows marked bad
  with :func:`reject`. Never fewer: a row that cannot be processed is rejected, not dropped;
* if ``process`` raises on a batch, the base class retries row by row, so one corrupt file only rejects
  its own row, with the exception as the reason;
* output rows keep the order of the inputs they came from (the hidden ``_seq`` column).

``__init__`` loads models once per worker process (Ray task cache or actor); ``process`` must not reload.
Calling a stage on a dict of columns (``stage({"id": [...], ...})``) returns a dict of columns: the form
tests and notebooks use.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import pyarrow as pa

from ..manifests.schema import ERROR_COLUMN, ERROR_STAGE_COLUMN, reject, table_from_rows

__all__ = ["Row", "Stage", "reject", "is_rejected", "table_to_rows", "to_rows", "from_rows"]

Row = dict[str, Any]
Batch = dict[str, list[Any]]
log = logging.getLogger("slmfactory.stages")


def batch_len(batch: Mapping[str, Any]) -> int:
    for v in batch.values():
        return len(v)
    return 0


def to_rows(batch: Mapping[str, Any]) -> list[Row]:
    """Columns -> rows (for tests and callers holding columns; the runner never goes through columns)."""
    names = list(batch)
    cols = [list(batch[k]) for k in names]
    return [{k: cols[j][i] for j, k in enumerate(names)} for i in range(batch_len(batch))]


def from_rows(rows: Sequence[Mapping[str, Any]], like: Mapping[str, Any] | None = None) -> Batch:
    """Rows -> columns; missing values become None. Column order: ``like``'s first, then new ones."""
    names: dict[str, None] = dict.fromkeys(like or ())
    for r in rows:
        names.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in rows] for k in names}


def table_to_rows(table: pa.Table) -> list[Row]:
    """Arrow -> row dicts in one pass; numeric list columns become numpy slices of one buffer (no copy)."""
    import numpy as np

    cols: dict[str, list[Any]] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        typ = col.type
        numeric = pa.types.is_list(typ) and (pa.types.is_floating(typ.value_type) or pa.types.is_integer(typ.value_type))
        if numeric and col.null_count == 0 and len(col):
            offsets = col.offsets.to_numpy()
            values = col.values.to_numpy(zero_copy_only=False)
            cols[name] = [values[offsets[i]:offsets[i + 1]] for i in range(len(col))]
        elif numeric and pa.types.is_floating(typ.value_type):
            cols[name] = [None if v is None else np.asarray(v, dtype=np.float32) for v in col.to_pylist()]
        else:
            cols[name] = col.to_pylist()
    names = list(cols)
    return [{k: cols[k][i] for k in names} for i in range(table.num_rows)]


def is_rejected(row: Mapping[str, Any]) -> bool:
    return bool(row.get(ERROR_COLUMN))


class Stage:
    """Base class. Subclasses set ``name`` (the name recipes use) and implement ``process``."""

    name: str = "stage"

    def process(self, rows: list[Row]) -> list[Row]:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, rows: list[Row]) -> list[Row]:
        """Run ``process`` on the live rows with rejection, row-by-row retry and order keeping."""
        live = [r for r in rows if not is_rejected(r)]
        dead = [r for r in rows if is_rejected(r)]
        out: list[Row] = []
        if live:
            try:  # shallow copies: a process that fails half-way must not leave columns on the retried rows
                out = self.process([dict(r) for r in live])
            except Exception as e:  # noqa: BLE001 - isolate the bad row below
                if len(live) == 1:
                    out = [reject(dict(live[0]), self.name, _reason(e))]
                else:
                    log.debug("stage %s failed on a batch of %d, retrying row by row: %s", self.name, len(live), e)
                    out = []
                    for r in live:
                        try:
                            out.extend(self.process([dict(r)]))
                        except Exception as e1:  # noqa: BLE001
                            out.append(reject(dict(r), self.name, _reason(e1)))
        for r in out:
            r.setdefault(ERROR_COLUMN, None)
            r.setdefault(ERROR_STAGE_COLUMN, None)
        out += dead
        if out and "_seq" in out[0]:  # outputs stay in the order of the inputs they came from
            out.sort(key=lambda r: r["_seq"])
        return out

    def apply_table(self, table: pa.Table, drop_transient: bool = False) -> pa.Table:
        """What executors call: Arrow in, Arrow out, one conversion each way."""
        return table_from_rows(self.apply(table_to_rows(table)), drop_transient=drop_transient)

    def __call__(self, batch: Mapping[str, Any] | list[Row]) -> Any:
        """Rows in -> rows out; a dict of columns in -> a dict of columns out (tests, notebooks)."""
        if isinstance(batch, Mapping):
            return from_rows(self.apply(to_rows(batch)), batch)
        return self.apply([dict(r) for r in batch])


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
