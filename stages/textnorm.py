"""Text normalization for alignment: the words an acoustic model can actually match.

Why: aligners (pocketsphinx's dictionary, a CTC character vocabulary) only know lower-case spoken
words. "Mr. Smith paid $5 in 1984!" must become "mister smith paid five dollars in nineteen eighty four"
before alignment. The original text is kept in ``text_original`` and the normalized one goes to
``text_normalized``; the ``text`` column itself is never changed (stages add columns, never rewrite).
Numbers are spelled with ``num2words`` (a maintained library), not hand-written rules.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from .base import Row, Stage, reject

ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "jr": "junior", "sr": "senior",
    "vs": "versus", "etc": "et cetera", "no": "number",
}
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
                         "\u2013": " ", "\u2014": " ", "-": " ", "_": " ", "/": " "})
_CURRENCY = {"$": "dollars", "\u00a3": "pounds", "\u20ac": "euros"}
_NUM = re.compile(r"(?P<cur>[$\u00a3\u20ac])?(?P<num>\d+(?:,\d{3})*(?:\.\d+)?)(?P<suf>st|nd|rd|th|%|s)?",
                  re.IGNORECASE)
_ABBR = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.", re.IGNORECASE)


def _number_words(m: re.Match) -> str:
    from num2words import num2words  # imported here: only needed when a digit appears

    raw, cur, suf = m.group("num").replace(",", ""), m.group("cur"), (m.group("suf") or "").lower()
    try:
        if suf in ("st", "nd", "rd", "th"):
            words = num2words(int(float(raw)), to="ordinal")
        elif "." not in raw and "," not in m.group("num") and not cur and len(raw) == 4 and 1100 <= int(raw) <= 2099 and suf in ("", "s"):
            words = num2words(int(raw), to="year")
            if suf == "s":  # 1980s -> nineteen eighties
                words = words[:-1] + "ies" if words.endswith("y") else words + "s"
        else:
            words = num2words(float(raw) if "." in raw else int(raw))
    except (ValueError, OverflowError, NotImplementedError):
        return " ".join(raw)
    if suf == "%":
        words += " percent"
    if cur:
        words += " " + _CURRENCY[cur]
    return f" {words} "


def normalize_text(text: str) -> str:
    """Lower-case spoken words separated by single spaces; keeps word-internal apostrophes (don't)."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    t = _ABBR.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], t)
    t = t.replace("&", " and ")
    t = _NUM.sub(_number_words, t)
    t = t.lower()
    # strip accents (café -> cafe): English acoustic models have no accented letters
    t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    t = re.sub(r"[^a-z' ]+", " ", t)
    words = [w.strip("'") for w in t.split()]
    return " ".join(w for w in words if w)


def normalized_words(text: str | None) -> list[str]:
    return normalize_text(text).split() if text else []


class NormalizeTextStage(Stage):
    """Adds ``text_original`` (the text as given) and ``text_normalized`` (what the aligner matches)."""

    name = "normalize_text"

    def __init__(self, **params: Any):
        if params:
            raise TypeError(f"normalize_text takes no parameters, got {sorted(params)}")

    def process(self, rows: list[Row]) -> list[Row]:
        out = []
        for row in rows:
            text = row.get("text")
            if text is None or not str(text).strip():
                out.append(reject(row, self.name, f"{row.get('audio_path') or row.get('id')}: no transcript to "
                                  f"normalize; add an `asr` stage before `normalize_text` or supply text"))
                continue
            norm = normalize_text(str(text))
            if not norm:
                out.append(reject(row, self.name, f"{row.get('audio_path') or row.get('id')}: transcript "
                                  f"{str(text)[:40]!r} has no speakable words after normalization"))
                continue
            row["text_original"] = text if row.get("text_original") is None else row["text_original"]
            row["text_normalized"] = norm
            out.append(row)
        return out
