"""The ``ctc`` aligner: a CTC acoustic model from a LOCAL checkpoint directory + CTC forced alignment.

The checkpoint is in transformers ``Wav2Vec2ForCTC`` format (config.json, weights, vocab.json: e.g. a
wav2vec2 or MMS model you downloaded yourself; nothing is downloaded). Why windows: emissions are computed
in windows of ``window_s`` seconds, batched across rows, so memory is bounded by the window, not the file.
The best path comes from :func:`slmfactory.stages.ctc.forced_align`; a word the vocabulary cannot spell is
aligned as the wildcard star token (score 0) and counts against ``min_coverage``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from ..manifests.schema import TARGET_SAMPLE_RATE
from .align import Aligner, AlignmentError, Word
from .ctc import add_star_column, forced_align, merge_tokens


class CtcAligner(Aligner):
    """A ``Wav2Vec2ForCTC`` checkpoint from a local directory + CTC forced alignment."""

    name = "ctc"

    def __init__(self, model_path: str | None = None, window_s: float = 30.0, batch_size: int = 8, device: str = "cpu",
                 impl: str = "auto", model: Any = None, vocab: dict[str, int] | None = None,
                 max_cells: float = 2e8):
        import torch

        self.torch = torch
        model_path = model_path or ""
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
        self._label = "ctc:" + (os.path.basename(os.path.normpath(model_path)) if model_path else type(model).__name__)

    @property
    def label(self) -> str:
        return self._label

    # emissions -----------------------------------------------------------------------------------
    def emissions(self, wavs: Sequence[np.ndarray]) -> list["Any"]:
        """(T_i, C+1) log-probs per waveform (star column appended); windows batched across rows."""
        torch = self.torch
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
