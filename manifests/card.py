"""The one dataset-card writer: a Hugging Face ``README.md`` from YAML front matter, a title and blocks.

Why one writer: both exports (a manifest to a ``datasets`` folder, a synthesis run to chat Parquet)
publish a card beside the data, and the cards must look alike (front matter, one ``#`` title, blocks
separated by one blank line, two-column Markdown tables) however much their contents differ.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable


def render(front_matter: list[str], title: str, blocks: list[str]) -> str:
    """``---`` + the YAML lines + ``---``, ``# title``, then the blocks, one blank line between them."""
    return "\n".join(["---", *front_matter, "---", f"# {title}", "", *"\n\n".join(blocks).split("\n")]) + "\n"


def table(rows: Iterable[tuple[Any, Any]], head: tuple[str, str] = ("", ""),
          empty: tuple[Any, Any] | None = None) -> str:
    """A Markdown table: the ``head`` row (blank titles allowed), then one row per pair (``empty`` if none)."""
    body = [f"| {a} | {b} |" for a, b in rows] or ([f"| {empty[0]} | {empty[1]} |"] if empty else [])
    return "\n".join(["|" + "|".join(f" {h} " if h else " " for h in head) + "|", "|---" * len(head) + "|", *body])


def write(dest: str | Path, text: str) -> Path:
    """Write the card as ``dest/README.md`` (where the Hub and ``datasets`` look for it)."""
    path = Path(dest) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
