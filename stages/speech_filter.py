"""Emilia-style segment filters: duration bounds and speaking-rate (characters per second) outliers.

Why: a segment whose transcript is far too long for its audio (a wrong or hallucinated transcript, a cut that
lost speech) or far too short (music, long silences, a transcript that lost words) teaches a speech LM the
wrong alignment between sound and text. Emilia drops segments whose speaking rate lies outside a band around
the corpus mean; per row we apply fixed bounds from the recipe (``min_cps``/``max_cps``), derived from a corpus
as ``docs/quality.md`` shows (median +- 3 MAD over ``OUT/manifest``). Every bound defaults to None (off).

``chars_per_second`` = characters of the transcript with whitespace runs collapsed to one space, divided by
the segment's duration. Rows without text (untranscribed podcasts before ASR) get None and skip the check.
"""
from __future__ import annotations

from ..manifests.schema import AUDIO_COLUMN, TARGET_SAMPLE_RATE
from .base import Row, Stage, reject


def bound(name: str, value: object) -> float | None:
    """A recipe threshold as a float, or None (off); anything else fails when the stage is built."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a number or null, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number or null, got {value!r}") from None


def chars_per_second(text: str | None, duration: float | None) -> float | None:
    """Speaking rate of a row: collapsed-whitespace character count / seconds (None without text or duration)."""
    chars = len(" ".join((text or "").split()))
    if not chars or not duration or duration <= 0:
        return None
    return chars / float(duration)


class SpeechFilterStage(Stage):
    """Adds chars_per_second; rejects rows outside [min_seconds, max_seconds] or [min_cps, max_cps]."""

    name = "speech_filter"

    def __init__(self, min_seconds: float | None = None, max_seconds: float | None = None,
                 min_cps: float | None = None, max_cps: float | None = None):
        self.min_seconds, self.max_seconds = bound("min_seconds", min_seconds), bound("max_seconds", max_seconds)
        self.min_cps, self.max_cps = bound("min_cps", min_cps), bound("max_cps", max_cps)
        for lo, hi, what in ((self.min_seconds, self.max_seconds, "seconds"), (self.min_cps, self.max_cps, "cps")):
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"need min_{what} < max_{what}, got {lo} and {hi}")

    def process(self, rows: list[Row]) -> list[Row]:
        for row in rows:
            duration = row.get("duration")
            if duration is None and row.get(AUDIO_COLUMN) is not None:
                duration = len(row[AUDIO_COLUMN]) / TARGET_SAMPLE_RATE
            cps = chars_per_second(row.get("text"), duration)
            row["chars_per_second"] = cps
            where = f"{row.get('audio_path')} @ {float(row.get('start') or 0.0):.2f}s"
            why = self._why(duration, cps)
            if why:
                reject(row, self.name, f"{where}: {why}")
        return rows

    def _why(self, duration: float | None, cps: float | None) -> str | None:
        checks = (  # (bound name, limit, value, is a minimum, what the value is, the fix)
            ("min_seconds", self.min_seconds, duration, True, "duration {v:.2f} s",
             "lower min_seconds in the recipe to keep short segments"),
            ("max_seconds", self.max_seconds, duration, False, "duration {v:.2f} s",
             "raise max_seconds or segment long rows (vad_segment mode: always)"),
            ("min_cps", self.min_cps, cps, True, "speaking rate {v:.1f} chars/s",
             "transcript too short for the audio (missing words or long non-speech): check it or lower min_cps"),
            ("max_cps", self.max_cps, cps, False, "speaking rate {v:.1f} chars/s",
             "transcript too long for the audio (wrong transcript or cut speech): check it or raise max_cps"),
        )
        for name, limit, value, is_min, what, fix in checks:
            if limit is None or value is None:
                continue
            if (value < limit) if is_min else (value > limit):
                side = "below" if is_min else "above"
                return f"{what.format(v=value)} is {side} {name} {limit:g}; {fix}"
        return None
