"""Small corpora with ground truth, generated offline: for tests, the demo and benchmarks.

Why generated: we may not download data sets at run time and must not check in large binaries, yet
VAD, transcripts and alignment need audio whose truth is known. espeak-ng speaks short public-domain
sentences in several voices; words can be synthesized one by one and joined with silences of known
length, so every word's start and end time is known to the sample.

Real recorded speech (LibriVox clips with transcripts from pocketsphinx's source distribution) is
fetched at set-up by ``python -m slmfactory.manifests.generate fetch-librivox`` into ``.cache/librivox``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import soxr

from . import espeak as _espeak

SR = 16_000
# Short sentences from public-domain texts (Aesop, Grimm, Austen, the Harvard sentences).
SENTENCES = [
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "it is easy to tell the depth of a well",
    "these days a chicken leg is a rare dish",
    "rice is often served in round bowls",
    "the juice of lemons makes fine punch",
    "the box was thrown beside the parked truck",
    "the hogs were fed chopped corn and garbage",
    "four hours of steady work faced us",
    "a large size in stockings is hard to sell",
    "the boy was there when the sun rose",
    "a rod is used to catch pink salmon",
    "the source of the huge river is the clear spring",
    "kick the ball straight and follow through",
    "help the woman get back to her feet",
    "a pot of tea helps to pass the evening",
    "smoky fires lack flame and heat",
    "the soft cushion broke the man's fall",
    "the salt breeze came across from the sea",
    "the girl at the booth sold fifty bonds",
    "slow and steady wins the race",
    "the wolf knocked at the door of the little house",
    "once upon a time there lived a poor miller",
    "the fox could not reach the grapes on the vine",
]
VOICES = ["en-us", "en-us+f3", "en-gb+m3", "en-gb-x-rp+f2", "en-us+m7", "en-029+f4"]


def have_espeak() -> bool:
    return _espeak.available()


def espeak(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, sr: int = SR) -> np.ndarray:
    """Speak ``text`` with espeak-ng (the shared wrapper in :mod:`.espeak`); mono float32 at ``sr``."""
    return _espeak.speak(text, voice, rate, pitch, sample_rate=sr)[0]


def trim(wav: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Cut leading/trailing near-silence (espeak pads every utterance)."""
    idx = np.flatnonzero(np.abs(wav) > threshold)
    return wav[idx[0]: idx[-1] + 1] if idx.size else wav[:0]


@dataclass
class Utterance:
    wav: np.ndarray
    text: str
    words: list[tuple[str, float, float]]  # (word, start_s, end_s) in this waveform
    voice: str


def words_with_silences(words: list[str], voice: str = "en-us", gap: float = 0.25, lead: float = 0.3,
                        rate: int = 160, sr: int = SR) -> Utterance:
    """Each word spoken separately, trimmed, joined with ``gap`` seconds of silence: exact word times."""
    parts, spans, t = [np.zeros(int(lead * sr), np.float32)], [], lead
    for i, w in enumerate(words):
        seg = trim(espeak(w, voice, rate=rate, sr=sr))
        spans.append((w, round(t, 4), round(t + len(seg) / sr, 4)))
        parts.append(seg)
        t += len(seg) / sr
        pause = lead if i == len(words) - 1 else gap
        parts.append(np.zeros(int(pause * sr), np.float32))
        t += int(pause * sr) / sr
    return Utterance(np.concatenate(parts), " ".join(words), spans, voice)


def sentence(text: str, voice: str = "en-us", lead: float = 0.2, sr: int = SR) -> Utterance:
    wav = trim(espeak(text, voice, sr=sr))
    pad = np.zeros(int(lead * sr), np.float32)
    return Utterance(np.concatenate([pad, wav, pad]), text, [], voice)


def _write(path: Path, wav: np.ndarray, sr: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sr, **kw)
    return path


# --- corpus shapes -------------------------------------------------------------------------------
def make_librispeech(root: str | Path, speakers: int = 2, chapters: int = 1, utts: int = 3, seed: int = 0) -> Path:
    """``<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` plus ``<spk>-<chapter>.trans.txt`` (upper case)."""
    root, rng = Path(root), random.Random(seed)
    for s in range(speakers):
        spk, voice = str(100 + s), VOICES[s % len(VOICES)]
        for c in range(chapters):
            ch = str(2000 + c)
            lines = []
            for u in range(utts):
                text = rng.choice(SENTENCES)
                uid = f"{spk}-{ch}-{u:04d}"
                _write(root / spk / ch / f"{uid}.flac", sentence(text, voice).wav)
                lines.append(f"{uid} {text.upper()}")
            (root / spk / ch / f"{spk}-{ch}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def make_librilight(root: str | Path, speakers: int = 2, books: int = 1, files: int = 2, sentences: int = 3,
                    pause: float = 1.2, seed: int = 0) -> Path:
    """``<spk>/<book>/<file>.flac`` with the per-file ``.json`` (speaker, book_meta, voice_activity)."""
    root, rng = Path(root), random.Random(seed)
    for s in range(speakers):
        spk, voice = str(300 + s), VOICES[(s + 2) % len(VOICES)]
        for b in range(books):
            book = f"book_{b:02d}"
            for f in range(files):
                wav, va = _long_take(rng, voice, sentences, pause)
                stem = f"chapter_{f:02d}_64kb"
                _write(root / spk / book / f"{stem}.flac", wav)
                meta = {"speaker": spk, "snr": 20.0, "voice_activity": va,
                        "book_meta": {"id": f"{b}", "title": f"Book {b}", "authors": [{"name": "Anon"}]}}
                (root / spk / book / f"{stem}.json").write_text(json.dumps(meta))
    return root


def make_podcasts(root: str | Path, episodes: int = 2, sentences: int = 8, pause: float = 1.5, seed: int = 0,
                  mp3: bool = True) -> Path:
    """Long episodes (speech turns separated by known silences), optional per-episode JSON; one MP3."""
    root, rng = Path(root), random.Random(seed)
    truth = {}
    for e in range(episodes):
        wav, va = _long_take(rng, VOICES[e % len(VOICES)], sentences, pause, alternate=True)
        name = f"episode_{e:02d}"
        path = _write(root / f"{name}.wav", wav)
        if mp3 and e == 0 and shutil.which("ffmpeg"):
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(path), "-b:a", "64k",
                            str(root / f"{name}.mp3")], check=True)
            path.unlink()
        (root / f"{name}.json").write_text(json.dumps({"title": f"Episode {e}", "show": "Test Show"}))
        truth[name] = va
    (root / "_truth.json").write_text(json.dumps(truth))
    return root


def _long_take(rng: random.Random, voice: str, n: int, pause: float, alternate: bool = False):
    """Sentences separated by ``pause`` seconds of silence; returns wav and the speech spans."""
    parts, spans, t = [np.zeros(int(pause * SR), np.float32)], [], pause
    for i in range(n):
        v = VOICES[(VOICES.index(voice) + i) % len(VOICES)] if alternate else voice
        seg = trim(espeak(rng.choice(SENTENCES), v))
        spans.append([round(t, 3), round(t + len(seg) / SR, 3)])
        parts += [seg, np.zeros(int(pause * SR), np.float32)]
        t += (len(seg) + int(pause * SR)) / SR
    return np.concatenate(parts), spans


def make_folder(root: str | Path, n: int = 4, seed: int = 0) -> Path:
    """A plain tree of audio with same-stem ``.txt`` transcripts."""
    root, rng = Path(root), random.Random(seed)
    for i in range(n):
        text = rng.choice(SENTENCES)
        _write(root / f"dir{i % 2}" / f"utt_{i:02d}.wav", sentence(text, VOICES[i % len(VOICES)]).wav)
        (root / f"dir{i % 2}" / f"utt_{i:02d}.txt").write_text(text + "\n")
    return root


BAD_FILES = {
    "truncated.flac": "truncated FLAC",
    "empty.wav": "0-byte WAV",
    "not_audio.flac": "text file named .flac",
}


def make_bad_corpus(root: str | Path) -> dict[str, str]:
    """A folder corpus mixing good files with every kind of bad input the issue names.

    Returns {relative path: what it is}; the ``good_*`` entries must reach the manifest and the
    ``bad_*`` ones the errors table.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    u = sentence(SENTENCES[0], "en-us")
    _write(root / "good_plain.wav", u.wav)
    (root / "good_plain.txt").write_text(u.text)
    kinds["good_plain.wav"] = "good 16 kHz mono"
    # 8 kHz mu-law WAV (telephone): good, must be resampled
    _write(root / "good_mulaw_8k.wav", soxr.resample(u.wav, SR, 8000), sr=8000, subtype="ULAW")
    kinds["good_mulaw_8k.wav"] = "good 8 kHz mu-law"
    # 48 kHz stereo: good, must be down-mixed and resampled
    st = soxr.resample(u.wav, SR, 48000)
    _write(root / "good_stereo_48k.flac", np.stack([st, 0.5 * st], axis=1), sr=48000)
    kinds["good_stereo_48k.flac"] = "good 48 kHz stereo"
    # audio without a transcript: good (text stays null)
    _write(root / "good_no_transcript.wav", sentence(SENTENCES[1], "en-gb+m3").wav)
    kinds["good_no_transcript.wav"] = "good, no transcript"
    # non-UTF-8 transcript next to good audio: rejected, since a mis-decoded transcript poisons text data
    _write(root / "bad_latin1.wav", sentence(SENTENCES[2], "en-us+f3").wav)
    (root / "bad_latin1.txt").write_bytes("caf\xe9 na\xefve text".encode("latin-1"))
    kinds["bad_latin1.wav"] = "good audio, non-UTF-8 transcript"
    # truncated FLAC
    _write(root / "tmp_full.flac", u.wav)
    data = (root / "tmp_full.flac").read_bytes()
    (root / "bad_truncated.flac").write_bytes(data[: max(64, len(data) // 10)])
    (root / "tmp_full.flac").unlink()
    kinds["bad_truncated.flac"] = "truncated FLAC"
    (root / "bad_empty.wav").write_bytes(b"")
    kinds["bad_empty.wav"] = "0-byte WAV"
    (root / "bad_not_audio.flac").write_text("this is not audio\n" * 20)
    kinds["bad_not_audio.flac"] = "text file named .flac"
    # transcript without audio
    (root / "bad_orphan.txt").write_text("a transcript whose audio is missing")
    kinds["bad_orphan.txt"] = "transcript without audio"
    return kinds


SHAPES: dict[str, Callable[..., Any]] = {  # what `slmfactory corpus generate SHAPE OUT` writes
    "librispeech": make_librispeech, "librilight": make_librilight, "podcasts": make_podcasts,
    "folder": make_folder, "bad": make_bad_corpus,
}


# --- real speech ---------------------------------------------------------------------------------
def librivox_dir() -> Path:
    return Path(os.environ.get("SLMF_LIBRIVOX", Path(__file__).resolve().parent.parent / ".cache" / "librivox"))


def librivox_clips() -> list[tuple[Path, str]]:
    """(wav, transcript) pairs of real read speech, fetched at set-up (see module docstring)."""
    d = librivox_dir()
    return [(w, w.with_suffix(".txt").read_text().strip()) for w in sorted(d.glob("*.wav"))
            if w.with_suffix(".txt").exists()]


def fetch_librivox(dest: Path | None = None) -> Path:
    """Extract pocketsphinx's LibriVox test clips from its source distribution (set-up step, needs pip)."""
    import tarfile
    import tempfile

    dest = Path(dest or librivox_dir())
    if list(dest.glob("*.wav")):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "pocketsphinx==5.1.1", "-d", tmp], check=True)
        (tar_path,) = Path(tmp).glob("pocketsphinx-*.tar.gz")
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if "/test/data/librivox/" in m.name and m.isfile():
                    m.name = os.path.basename(m.name)
                    tar.extract(m, dest, filter="data")
    return dest


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Generate test corpora or fetch the LibriVox clips.")
    p.add_argument("what", choices=[*SHAPES, "fetch-librivox"])
    p.add_argument("out", nargs="?", default=None)
    a = p.parse_args(argv)
    if a.what == "fetch-librivox":
        print(fetch_librivox(Path(a.out) if a.out else None))
        return
    if a.out is None:
        p.error("give an output folder")
    SHAPES[a.what](a.out)
    print(a.out)


if __name__ == "__main__":
    main()
