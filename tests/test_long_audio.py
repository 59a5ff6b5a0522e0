"""Long audio in bounded memory: windowed decode + VAD equal the whole-file path; segment loads read their span;
the k-means sample counts real durations.

Audio: espeak-ng sentences (slmfactory.manifests.generate) with silences between them, tiled to 2 minutes and
written as 44.1 kHz stereo FLAC (so streaming exercises down-mix and soxr resampling); silero-vad's model
ships inside its package. Memory is checked with tracemalloc (numpy allocations, deterministic), as a coarse
ratio against the decoded file's size; the RSS figures for 10 min .. 2 h are bench/bench_long_audio.py's job.
"""
from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from slmfactory.manifests import generate as gen
from slmfactory.manifests.audio import load_audio
from slmfactory.manifests.audio_stream import AudioWindows
from slmfactory.stages.decode import DecodeStage
from slmfactory.stages.segment import VadSegmentStage
from slmfactory.tokenize import kmeans_sample as ks

SECONDS = 120


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory, require_espeak):
    """2 min, 44.1 kHz stereo: 6 sentences with 0.3-1.6 s pauses (some long enough to split), tiled."""
    rng = random.Random(0)
    parts = []
    for text in gen.SENTENCES[:6]:
        parts += [gen.sentence(text).wav, np.zeros(int(rng.uniform(0.3, 1.6) * 16000), np.float32)]
    unit = np.concatenate(parts)
    mono = np.tile(unit, SECONDS * 16000 // len(unit) + 1)[: SECONDS * 16000]
    hi = soxr.resample(mono, 16000, 44100).astype(np.float32)
    stereo = np.stack([hi, 0.8 * hi], axis=1)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(str(path), stereo, 44100)
    return str(path)


def test_streamed_segments_equal_whole_file_segments(long_flac):
    """decode leaves the 2-min file as a reference; vad_segment streams it (10 s decode windows, 65 s VAD
    windows) and cuts exactly where decoding the whole file and segmenting it in memory cuts."""
    row = {"id": "long", "audio_path": long_flac, "start": None, "duration": None, "source": "t", "meta": None}
    vad = VadSegmentStage(max_seconds=8.0, max_streams=32, window_seconds=10.0)
    whole = vad(DecodeStage(stream_seconds=None)([row]))
    ref = DecodeStage(stream_seconds=60)([row])[0]
    assert ref["audio"] is None and ref["duration"] == pytest.approx(SECONDS, abs=1e-3) and not ref.get("error")
    streamed = vad([ref])
    assert not any(r.get("error") for r in whole + streamed)
    assert len(whole) > 20 and all(r["duration"] <= 8.0 + 1e-6 for r in whole)
    assert [(r["id"], r["start"], r["duration"]) for r in streamed] == \
        [(r["id"], r["start"], r["duration"]) for r in whole]
    assert all(r["audio"] is None for r in streamed) and all(r["audio"] is not None for r in whole)
    # a segment loaded later on its own is the slice the whole-file path handed on (up to the sub-sample offset
    # of seeking at 44.1 kHz and the resampler's edges)
    mid = whole[len(whole) // 2]
    seg, _ = load_audio(long_flac, mid["start"], mid["duration"])
    assert len(seg) == len(mid["audio"])
    assert np.corrcoef(seg[800:-800], mid["audio"][800:-800])[0, 1] > 0.99


def test_windows_are_the_whole_decode_and_memory_stays_bounded(long_flac, tmp_path):
    """Windowed decode (soundfile blocks + soxr.ResampleStream) is bit-identical to load_audio; a windowed
    pass and a 5 s segment load each allocate a small fraction of the decoded file."""
    full, _ = load_audio(long_flac)
    decoded_bytes = SECONDS * 44100 * 2 * 4  # what a whole-file decode holds before the down-mix
    tracemalloc.start()
    total, first = 0, None
    for w in AudioWindows(long_flac, window_seconds=7.77):
        first = w[:1000].copy() if first is None else first
        assert np.array_equal(w, full[total: total + len(w)])
        total += len(w)
    _, stream_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    seg, _ = load_audio(long_flac, 100.0, 5.0)
    _, seg_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == len(full) and len(seg) == 5 * 16000
    assert stream_peak - full.nbytes < 0.2 * decoded_bytes, stream_peak  # windows of 7.77 s out of 120 s
    assert seg_peak - full.nbytes < 0.05 * decoded_bytes, seg_peak
    # the same through FFmpeg (torchcodec): a short MP3, windows == whole decode
    mp3 = tmp_path / "short.mp3"
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", long_flac, "-t", "20", "-b:a", "64k", str(mp3)], check=True)
    whole_mp3, _ = load_audio(str(mp3))
    assert np.array_equal(np.concatenate(list(AudioWindows(str(mp3), window_seconds=3.3))), whole_mp3)


def test_kmeans_sample_real_durations_seeded_and_lazy(tmp_path):
    """The k-means sample reaches the requested hours with the files' real lengths (no 10 s guess), is the same
    for any input order, changes with the seed, crops long files, and reads few headers."""
    lengths = [3.0 + (i * 7) % 41 for i in range(30)]  # 3 .. 43 s
    rows = []
    for i, secs in enumerate(lengths):
        p = tmp_path / f"f{i:02d}.wav"
        sf.write(str(p), np.zeros(int(secs * 8000), np.int16), 8000)
        rows.append({"audio_path": str(p), "start": None, "duration": None})
    rows.append({"audio_path": str(tmp_path / "missing.wav"), "start": None, "duration": None})
    real = {r["audio_path"]: s for r, s in zip(rows, lengths)}
    hours = 200 / 3600
    stats: dict = {}
    a = ks.sample_spans(rows, hours, seed=7, crop_seconds=30.0, stats=stats)
    total = sum(s["duration"] for s in a)
    assert total >= 200 and total - a[-1]["duration"] < 200  # just reaches the budget, in priority order
    for s in a:
        full = real[s["audio_path"]]
        assert s["duration"] == pytest.approx(min(full, 30.0))
        assert 0 <= s["start"] and s["start"] + s["duration"] <= full + 1e-6
    assert any(real[s["audio_path"]] > 30 for s in a)  # long files were cropped, not skipped
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert ks.sample_spans(shuffled, hours, seed=7, crop_seconds=30.0) == a
    assert ks.sample_spans(rows, hours, seed=8, crop_seconds=30.0) != a
    assert ks.sample_spans(rows, 10.0, seed=7, crop_seconds=None).__len__() == 30  # all of a small corpus
    assert stats["probes"] < len(rows)  # rows that could no longer enter the sample were never probed
    given = [dict(r, duration=5.0) for r in rows[:30]]  # known durations: no header read at all
    assert sum(s["duration"] for s in ks.sample_spans(given, 60 / 3600, seed=0)) == pytest.approx(60.0)



def test_kmeans_features_as_ray_work_equal_the_local_loop(long_flac, ray_local):
    """On Ray, the sampled spans' features are computed by an actor pool; they are the local loop's frames."""
    from slmfactory.tokenize.factory import build_features

    spans = [{"audio_path": long_flac, "start": float(s), "duration": 4.0} for s in (0, 37, 81)]
    spans.append({"audio_path": long_flac + ".missing.wav", "start": 0.0, "duration": 2.0})  # skipped
    assert ks.ray_running()
    on_ray = ks.ray_features(spans, {"tokenizer": "spectral"}, workers=1)
    local = ks.collect_features(build_features("spectral"), ks.span_audio(spans))
    assert on_ray.shape == local.shape and on_ray.shape[0] > 3 * 150
    assert np.array_equal(np.sort(on_ray, axis=0), np.sort(local, axis=0))  # blocks may arrive in any order
