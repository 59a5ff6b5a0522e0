"""Forced alignment: word-level timestamps (``words``: list of {word, start, end, score}) for each segment.

Why: interleaving speech and text at word boundaries needs to know where every word is in the audio.
Times are seconds relative to the segment (its ``start`` in the source file is 0 here).

Backends (one interface, ``align_batch(wavs, word_lists) -> list[list[Word] | Exception]``):

* ``pocketsphinx`` (default, offline: the package ships an English acoustic model and dictionary).
  Words missing from the dictionary are timed between their aligned neighbours with score 0 and count
  against ``min_coverage``. Digital silence (exact zeros, as in synthesized audio) makes pocketsphinx's
  front end fail, so a fixed-seed dither far below the speech level is added — deterministic.
* ``ctc``: a CTC acoustic model from a LOCAL checkpoint directory (transformers ``Wav2Vec2ForCTC``
  format: config.json, weights, vocab.json — e.g. a wav2vec2 or MMS model you downloaded yourself).
  Emissions are computed in windows of ``window_s`` seconds, batched across rows, so memory is bounded by
  the window, not the file; the path comes from :func:`slmfactory.stages.ctc.forced_align`.

Rows whose alignment fails, or aligns fewer than ``min_coverage`` of the transcript's words, go to
``errors`` with the reason.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..manifests.schema import TARGET_SAMPLE_RATE
from ..manifests.audio import load_audio
from .base import Row, Stage, reject
from .textnorm import normalized_words


class AlignmentError(ValueError):
    """Alignment produced nothing usable for this row; the message says why and what to try."""


@dataclass
class Word:
    word: str
    start: float
    end: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"word": self.word, "start": round(float(self.start), 4), "end": round(float(self.end), 4),
                "score": round(float(self.score), 4)}


def fill_unaligned(words: Sequence[str], aligned: dict[int, tuple[float, float, float]], duration: float) -> list[Word]:
    """Give words without an alignment the gap between their aligned neighbours (score 0), in order."""
    out: list[Word] = []
    n, i = len(words), 0
    while i < n:
        if i in aligned:
            s, e, sc = aligned[i]
            out.append(Word(words[i], s, e, sc))
            i += 1
            continue
        j = i
        while j < n and j not in aligned:
            j += 1
        left = out[-1].end if out else 0.0
        right = aligned[j][0] if j < n else duration
        right = max(right, left)
        step = (right - left) / (j - i)
        for k in range(i, j):
            out.append(Word(words[k], left + (k - i) * step, left + (k - i + 1) * step, 0.0))
        i = j
    return out


def tighten_to_voice(words: list[Word], wav: np.ndarray, below_peak_db: float = 45.0,
                     frame_s: float = 0.01) -> list[Word]:
    """Shrink each word to the frames inside it that carry sound (energy within ``below_peak_db`` of the
    segment's loud frames). Why: HMM and CTC aligners let a word swallow the pause after it; a word's span
    should be where it is spoken. Words never grow, and a word with no loud frame keeps its span."""
    hop = int(frame_s * TARGET_SAMPLE_RATE)
    n = len(wav) // hop
    if n == 0:
        return words
    frames = wav[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10.0 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    loud = db > (np.percentile(db, 95) - below_peak_db)
    out = []
    for w in words:
        a, b = int(w.start / frame_s), min(n, int(np.ceil(w.end / frame_s)))
        idx = np.flatnonzero(loud[a:b])
        if idx.size and w.score > 0:
            out.append(Word(w.word, max(w.start, (a + idx[0]) * frame_s), min(w.end, (a + idx[-1] + 1) * frame_s), w.score))
        else:
            out.append(w)
    return out


# --- pocketsphinx ------------------------------------------------------------------------------
_VARIANT = re.compile(r"\(\d+\)$")


class PocketsphinxAligner:
    """``Decoder.set_align_text`` with the bundled English model (or ``hmm``/``dict`` paths you give)."""

    frame_rate = 100.0

    def __init__(self, hmm: str | None = None, dictionary: str | None = None, dither: float = 1e-3,
                 seed: int = 0):
        from pocketsphinx import Decoder

        kw: dict[str, Any] = {"loglevel": "FATAL", "lm": None, "cmn": "batch"}
        if hmm:
            kw["hmm"] = hmm
        if dictionary:
            kw["dict"] = dictionary
        self.decoder = Decoder(**kw)
        self.dither, self.seed = dither, seed
        self.name = "pocketsphinx:" + os.path.basename(str(self.decoder.config["hmm"])).rstrip("/")

    def in_vocab(self, word: str) -> bool:
        return self.decoder.lookup_word(word) is not None

    def _pcm(self, wav: np.ndarray) -> bytes:
        noise = np.random.default_rng(self.seed).normal(0.0, self.dither, len(wav)).astype(np.float32)
        return (np.clip(wav + noise, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()

    def align(self, wav: np.ndarray, words: Sequence[str]) -> tuple[list[Word], float]:
        known = [i for i, w in enumerate(words) if self.in_vocab(w)]
        coverage = len(known) / max(1, len(words))
        if not known:
            raise AlignmentError(f"none of the {len(words)} words is in the pocketsphinx dictionary; "
                                 f"check the transcript's language or pass a `dictionary`")
        d = self.decoder
        try:
            d.set_align_text(" ".join(words[i] for i in known))
            d.reinit_feat()  # CMN/noise estimates carry over between utterances: reset so rows are independent
            d.start_utt()
            d.process_raw(self._pcm(wav), full_utt=True)
            d.end_utt()
            segs = d.seg()
        except RuntimeError as e:
            raise AlignmentError(f"pocketsphinx alignment failed ({e}); the audio may not contain this transcript") from e
        if segs is None:
            raise AlignmentError("pocketsphinx found no alignment (no segmentation): the audio does not match "
                                 "the transcript, is too short for it, or is silent")
        got = [(_VARIANT.sub("", s.word), s) for s in segs]
        got = [(w, s) for w, s in got if not (w.startswith("<") or w.startswith("[") or w.startswith("+"))]
        if len(got) != len(known):
            raise AlignmentError(f"pocketsphinx aligned {len(got)} words of {len(known)}; the transcript "
                                 f"does not match the audio")
        aligned: dict[int, tuple[float, float, float]] = {}
        for idx, (w, s) in zip(known, got):
            nframes = max(1, s.end_frame - s.start_frame + 1)
            # ascore is a likelihood in linear scale; its per-frame geometric mean is a usable relative score
            score = float(np.exp(np.log(max(s.ascore, 1e-300)) / nframes)) if s.ascore > 0 else 0.0
            aligned[idx] = (s.start_frame / self.frame_rate, (s.end_frame + 1) / self.frame_rate, score)
        return fill_unaligned(words, aligned, len(wav) / TARGET_SAMPLE_RATE), coverage

    def align_batch(self, wavs: Sequence[np.ndarray], word_lists: Sequence[Sequence[str]]):
        out: list[Any] = []
        for wav, words in zip(wavs, word_lists):
            try:
                out.append(self.align(wav, words))
            except AlignmentError as e:
                out.append(e)
        return out


# --- CTC -----------------------------------------------------------------------------------------
class CtcAligner:
    """A ``Wav2Vec2ForCTC`` checkpoint from a local directory + CTC forced alignment."""

    def __init__(self, model_path: str, window_s: float = 30.0, batch_size: int = 8, device: str = "cpu",
                 impl: str = "auto", model: Any = None, vocab: dict[str, int] | None = None,
                 max_cells: float = 2e8):
        import torch

        self.torch = torch
        if model is None:
            if not model_path or not os.path.isdir(model_path):
                raise FileNotFoundError(f"ctc aligner: model_path {model_path!r} is not a directory; give a local "
                                        f"Wav2Vec2ForCTC checkpoint (config.json, weights, vocab.json), see docs/align.md")
            from transformers import Wav2Vec2ForCTC

            model = Wav2Vec2ForCTC.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
        if vocab is None:
            vpath = os.path.join(model_path, "vocab.json")
            if not os.path.exists(vpath):
                raise FileNotFoundError(f"ctc aligner: {vpath} missing; save the model's tokenizer next to it "
                                        f"(tokenizer.save_pretrained(dir))")
            with open(vpath, encoding="utf-8") as f:
                vocab = json.load(f)
            if vocab and isinstance(next(iter(vocab.values())), dict):  # multilingual {lang: vocab}
                vocab = vocab.get("eng") or next(iter(vocab.values()))
        self.model = model.eval().to(device)
        self.device = device
        self.vocab = {str(k): int(v) for k, v in vocab.items()}
        cfg = self.model.config
        self.blank = int(cfg.pad_token_id if cfg.pad_token_id is not None else self.vocab.get("<pad>", 0))
        self.delim = self.vocab.get("|", self.vocab.get(" "))
        self.star = int(cfg.vocab_size)  # appended wildcard column
        self.window = int(window_s * TARGET_SAMPLE_RATE)
        self.batch_size = batch_size
        self.impl = impl
        self.max_cells = float(max_cells)  # frames x CTC states: the Viterbi keeps one byte per cell
        self.use_mask = getattr(cfg, "feat_extract_norm", "group") == "layer"
        self.name = "ctc:" + (os.path.basename(os.path.normpath(model_path)) if model_path else type(model).__name__)

    # emissions -----------------------------------------------------------------------------------
    def emissions(self, wavs: Sequence[np.ndarray]) -> list["Any"]:
        """(T_i, C+1) log-probs per waveform (star column appended); windows batched across rows."""
        torch = self.torch
        from .ctc import add_star_column

        chunks: list[tuple[int, int, np.ndarray]] = []  # (row, window index, samples)
        for r, w in enumerate(wavs):
            for k, s in enumerate(range(0, max(1, len(w)), self.window)):
                chunks.append((r, k, w[s:s + self.window]))
        order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i][2]))
        out: dict[tuple[int, int], Any] = {}
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                lens = [len(chunks[i][2]) for i in idx]
                x = torch.zeros(len(idx), max(lens))
                mask = torch.zeros(len(idx), max(lens), dtype=torch.long)
                for j, i in enumerate(idx):
                    a = torch.from_numpy(np.asarray(chunks[i][2], dtype=np.float32))
                    a = (a - a.mean()) / torch.sqrt(a.var(unbiased=False) + 1e-7)  # Wav2Vec2FeatureExtractor
                    x[j, : len(a)] = a
                    mask[j, : len(a)] = 1
                logits = self.model(x.to(self.device), attention_mask=mask.to(self.device) if self.use_mask else None).logits
                flen = self.model._get_feat_extract_output_lengths(torch.tensor(lens)).tolist()
                lp = torch.log_softmax(logits.float(), dim=-1).cpu()
                for j, i in enumerate(idx):
                    out[(chunks[i][0], chunks[i][1])] = lp[j, : int(flen[j])]
        res = []
        for r in range(len(wavs)):
            parts = [out[k] for k in sorted(k for k in out if k[0] == r)]
            res.append(add_star_column(torch.cat(parts, dim=0), self.blank))
        return res

    def _targets(self, words: Sequence[str]) -> tuple[list[int], list[list[int]], float]:
        """Token ids, the target positions of each word, and the share of words spelled without ``*``."""
        targets: list[int] = []
        positions: list[list[int]] = []
        spelled = 0
        for wi, w in enumerate(words):
            if wi and self.delim is not None:
                targets.append(self.delim)
            ids = []
            for c in w:
                t = self.vocab.get(c, self.vocab.get(c.upper()))
                if t is not None and t != self.blank:
                    ids.append(t)
            if ids:
                spelled += 1
            else:
                ids = [self.star]
            positions.append(list(range(len(targets), len(targets) + len(ids))))
            targets.extend(ids)
        return targets, positions, spelled / max(1, len(words))

    def align_batch(self, wavs: Sequence[np.ndarray], word_lists: Sequence[Sequence[str]]):
        from .ctc import forced_align, merge_tokens

        ems = self.emissions(wavs)
        out: list[Any] = []
        for wav, words, em in zip(wavs, word_lists, ems):
            targets, positions, coverage = self._targets(words)
            cells = em.shape[0] * (2 * len(targets) + 1)
            if cells > self.max_cells:
                out.append(AlignmentError(f"segment too long for CTC alignment ({em.shape[0]} frames x "
                                          f"{2 * len(targets) + 1} states > max_cells {self.max_cells:.0f}); cut it "
                                          f"shorter with vad_segment max_seconds or raise max_cells"))
                continue
            try:
                path, frame_lp = forced_align(em, targets, blank=self.blank, impl=self.impl)
            except (ValueError, RuntimeError) as e:
                out.append(AlignmentError(f"CTC alignment failed: {e}; the segment may be too short for its "
                                          f"transcript"))
                continue
            spans = merge_tokens(path, frame_lp, self.blank)
            if len(spans) != len(targets):
                out.append(AlignmentError(f"CTC path has {len(spans)} token runs for {len(targets)} targets"))
                continue
            sec = len(wav) / TARGET_SAMPLE_RATE / max(1, em.shape[0])
            res = []
            for w, pos in zip(words, positions):
                ts = [spans[p] for p in pos]
                res.append(Word(w, ts[0].start * sec, ts[-1].end * sec,
                                0.0 if targets[pos[0]] == self.star else float(np.mean([t.score for t in ts]))))
            out.append((res, coverage))
        return out


def make_aligner(backend: str = "pocketsphinx", model_path: str | None = None, **kw: Any):
    if backend == "pocketsphinx":
        return PocketsphinxAligner(**({"hmm": model_path} if model_path else {}), **kw)
    if backend == "ctc":
        return CtcAligner(model_path or "", **kw)
    raise ValueError(f"unknown aligner backend {backend!r}; use 'pocketsphinx' or 'ctc'")


class AlignStage(Stage):
    """Adds ``words`` and ``aligner``. Rows that already carry ``words`` (e.g. from Whisper) pass through
    unless ``overwrite``."""

    name = "align"

    def __init__(self, backend: str = "pocketsphinx", model_path: str | None = None, min_coverage: float = 0.8,
                 overwrite: bool = False, tighten: bool = True, aligner: Any = None, **backend_params: Any):
        self.aligner = aligner if aligner is not None else make_aligner(backend, model_path, **backend_params)
        self.min_coverage = float(min_coverage)
        self.overwrite = overwrite
        self.tighten = tighten

    def process(self, rows: list[Row]) -> list[Row]:
        todo, wavs, words = [], [], []
        for i, row in enumerate(rows):
            if row.get("words") and not self.overwrite:
                continue
            where = row.get("audio_path") or row.get("id")
            ws = (row.get("text_normalized") or "").split() or normalized_words(row.get("text"))
            if not ws:
                reject(row, self.name, f"{where}: no transcript to align; add an `asr` stage or supply text")
                continue
            wav = row.get("audio")
            if wav is None:
                wav, _ = load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))
            todo.append(i)
            wavs.append(np.asarray(wav, dtype=np.float32))
            words.append(ws)
        results = self.aligner.align_batch(wavs, words) if todo else []
        for i, wav, res in zip(todo, wavs, results):
            row, where = rows[i], rows[i].get("audio_path") or rows[i].get("id")
            if isinstance(res, Exception):
                reject(row, self.name, f"{where}: {res}")
                continue
            aligned, coverage = res
            if self.tighten:
                aligned = tighten_to_voice(aligned, wav)
            if coverage < self.min_coverage:
                reject(row, self.name, f"{where}: only {coverage:.0%} of {len(aligned)} words could be aligned "
                       f"(min_coverage {self.min_coverage:.0%}); check the transcript or lower min_coverage")
                continue
            row["words"] = [w.as_dict() for w in aligned]
            row["aligner"] = self.aligner.name
        return rows
