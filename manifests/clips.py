"""The one exporter of audio clips: a row's segment as FLAC bytes, and the guard that lists unreadable rows.

Why one copy: every export embeds audio in the data set it writes (a manifest exported with
``slmfactory export --to hf``, a synthesis run's ``OUT/hf``, the chat exports), and all must cut, resample
and encode the same way, and leave out (and list, never silently drop) a row whose audio can no longer be read.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .schema import TARGET_SAMPLE_RATE

Reason = Callable[[dict[str, Any], Exception], str]


def flac_clip(path: str, start: float | None = None, duration: float | None = None,
              sampling_rate: int | None = TARGET_SAMPLE_RATE, keep_whole_flac: bool = False) -> bytes:
    """``[start, start+duration)`` of ``path`` as mono 16-bit FLAC at ``sampling_rate`` (None: the file's own).

    ``keep_whole_flac=True`` embeds a FLAC file as it is when the clip is the whole file (no start and no
    duration, or a duration within 10 ms of the file's) and already mono at ``sampling_rate``: no decode, no
    re-encode. Any other file is resampled, so one export never mixes rates.
    """
    import soundfile as sf

    from .audio import load_audio, probe

    if keep_whole_flac and path.lower().endswith(".flac") and not start:
        info = sf.info(path)
        same_format = info.channels == 1 and sampling_rate in (None, info.samplerate)
        if same_format and (duration is None or abs(info.frames / info.samplerate - float(duration)) < 0.01):
            return Path(path).read_bytes()
    sr = sampling_rate or probe(path).sample_rate
    wav, _ = load_audio(path, float(start or 0.0), duration, target_sr=sr)
    buf = io.BytesIO()
    sf.write(buf, wav.clip(-1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def examples(rows: Iterable[dict[str, Any]], to_example: Callable[[dict[str, Any]], dict[str, Any]],
             skipped: Any, reason: Reason) -> Iterator[dict[str, Any]]:
    """``to_example(row)`` for each row; a row that fails is left out and ``(id, reason(row, error))`` is
    appended to ``skipped`` (for the summary and the card): one unreadable clip must not sink the export."""
    for row in rows:
        try:
            ex = to_example(row)
        except Exception as e:  # noqa: BLE001 - any decode error of one file
            skipped.append((row.get("id"), reason(row, e)))
            continue
        yield ex
