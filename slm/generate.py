"""Generation with a trained speech LM: KV-cache decoding, seeded sampling, modality-constrained outputs.

A speech LM here is a Hugging Face causal-LM folder plus ``speech_lm.json`` (the vocabulary layout of the packed
data: ``[0, text_vocab_size)`` text ids, then ``[TEXT] [SPEECH] [EOS] [PAD]``, then ``num_units`` unit ids from
``unit_offset``). Decoding is Hugging Face ``generate`` (its KV cache, its temperature/top-k warpers) with one
logits processor that sets every id outside the requested modality to -inf BEFORE temperature and top-k, so a
constrained sample can never be a forbidden id:

* ``speech``: unit ids + ``[EOS]``;  ``text``: text ids + ``[EOS]``;  ``any``: every id but ``[PAD]``.

Prompts follow the training formats: ``[TEXT] words`` or ``[SPEECH] units``; when the requested modality differs
from the prompt's (text->speech, speech->text) the other marker is appended, as in the concatenated
``text_speech`` / ``speech_text`` formats, and decoding is constrained to that modality. Text prompts are
normalised like training transcripts (lower case, numbers as words). Defaults are RECIPES.md's: temperature
0.8, top-k 25, 150 new tokens; ``seed`` fixes the sample (the global torch RNG is left as it was).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..stages.textnorm import normalize_text
from ..stages.texttok import TextTokenizer

INFO_FILE = "speech_lm.json"
MODALITIES = ("speech", "text", "any")
REQUIRED = ("text_vocab_size", "num_units", "unit_offset", "vocab_size", "special_tokens", "markers", "eos", "pad")


@dataclass
class Generation:
    """What one call produced: the new ids, and the units and text among them (``text`` None without a tokenizer)."""

    prompt: list[int]
    tokens: list[int]
    units: list[int]
    text: str | None
    modality: str
    stopped_at_eos: bool
    segments: list[dict[str, Any]] = field(default_factory=list)  # [{"kind": "text"|"speech", ...}] in order

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_info(model_dir: str | Path) -> dict[str, Any]:
    """``speech_lm.json`` of a model folder, checked for the vocabulary fields generation needs."""
    path = Path(model_dir) / INFO_FILE
    if not path.exists():
        raise FileNotFoundError(f"{model_dir}: no {INFO_FILE}; give a folder written by `slmfactory slm train` "
                                f"(a Hugging Face model folder plus {INFO_FILE})")
    info = json.loads(path.read_text())
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise ValueError(f"{path}: missing {missing}; copy them from the packed set's dataset_info.json")
    return info


class AllowedIds:
    """Logits processor: ids outside ``allowed`` get -inf (runs before the temperature and top-k warpers)."""

    def __init__(self, allowed: torch.Tensor):
        self.blocked = ~allowed

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n = scores.shape[-1]
        blocked = self.blocked[:n].to(scores.device)
        if n > len(self.blocked):  # padded embedding rows beyond the vocabulary are never valid
            blocked = torch.cat([blocked, torch.ones(n - len(blocked), dtype=torch.bool, device=scores.device)])
        return scores.masked_fill(blocked, float("-inf"))


class SpeechLM:
    """A loaded speech LM: ``model`` (transformers), ``info`` (speech_lm.json), ids of markers/EOS, text tokenizer."""

    def __init__(self, model: Any, info: dict[str, Any], text_tokenizer: TextTokenizer | None = None):
        self.model, self.info, self.text_tok = model.eval(), info, text_tokenizer
        sp = info["special_tokens"]
        self.text_id, self.speech_id = int(sp[info["markers"]["text"]]), int(sp[info["markers"]["speech"]])
        self.eos_id, self.pad_id = int(sp[info["eos"]]), int(sp[info["pad"]])
        self.text_size, self.unit_offset = int(info["text_vocab_size"]), int(info["unit_offset"])
        self.num_units, self.vocab_size = int(info["num_units"]), int(info["vocab_size"])
        n_model = int(self.model.get_input_embeddings().weight.shape[0])
        if n_model < self.vocab_size:
            raise ValueError(f"the model has {n_model} embeddings but speech_lm.json a vocabulary of {self.vocab_size}; "
                             f"the folder mixes a model and a vocabulary of different runs")

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> SpeechLM:
        from transformers import AutoModelForCausalLM

        info = read_info(model_dir)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, local_files_only=True).to(device)
        return cls(model, info, find_text_tokenizer(model_dir, info))

    # --- ids ------------------------------------------------------------------------------------------
    def allowed(self, modality: str) -> torch.Tensor:
        """Boolean mask over the vocabulary: which ids ``modality`` may emit."""
        if modality not in MODALITIES:
            raise ValueError(f"modality {modality!r}: choose one of {', '.join(MODALITIES)}")
        ok = torch.zeros(self.vocab_size, dtype=torch.bool)
        if modality == "speech":
            ok[self.unit_offset: self.unit_offset + self.num_units] = True
        elif modality == "text":
            ok[: self.text_size] = True
        else:
            ok[:] = True
            ok[self.pad_id] = False
        ok[self.eos_id] = True
        return ok

    def encode_text(self, text: str) -> list[int]:
        if self.text_tok is None:
            raise ValueError("text prompts need the text tokenizer: speech_lm.json `text_tokenizer.path` does not "
                             "exist here and the model folder has no tokenizer.json/spm.model; copy it next to the model")
        return self.text_tok.encode(normalize_text(text))

    def prompt_ids(self, text: str | None = None, units: Sequence[int] | None = None, modality: str = "any") -> list[int]:
        """``[TEXT] text`` or ``[SPEECH] units``, plus the other marker when ``modality`` is the other one."""
        if (text is None) == (units is None):
            raise ValueError("give exactly one prompt: text or units")
        if units is not None:
            bad = [u for u in units if not 0 <= int(u) < self.num_units]
            if bad:
                raise ValueError(f"unit ids {bad[:5]} outside [0, {self.num_units}): the prompt was tokenized with "
                                 f"another unit tokenizer than the training data")
            ids = [self.speech_id] + [self.unit_offset + int(u) for u in units]
            return ids + ([self.text_id] if modality == "text" else [])
        ids = [self.text_id] + self.encode_text(text or "")
        return ids + ([self.speech_id] if modality == "speech" else [])

    # --- decoding -------------------------------------------------------------------------------------
    def generate_ids(self, prompt: Sequence[int], modality: str = "any", max_new_tokens: int = 150,
                     temperature: float = 0.8, top_k: int | None = 25, seed: int = 0, use_cache: bool = True) -> list[int]:
        """New ids after ``prompt`` (ending with ``[EOS]`` when the model stopped); ``temperature <= 0`` is greedy."""
        from transformers import GenerationConfig, LogitsProcessorList

        ctx = int(self.info.get("context_length") or 0)
        if ctx and len(prompt) + int(max_new_tokens) > ctx:
            raise ValueError(f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
                             f"{ctx}-token context the model was trained on; shorten the prompt (--prompt-seconds) "
                             f"or ask for fewer tokens")
        device = self.model.device
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
        sample = temperature is not None and temperature > 0
        cfg = GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=sample, eos_token_id=self.eos_id,
                               pad_token_id=self.pad_id, use_cache=use_cache,
                               **({"temperature": float(temperature), "top_k": int(top_k or 0)} if sample else {}))
        procs = LogitsProcessorList([AllowedIds(self.allowed(modality))])
        cuda = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(int(seed))
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=cfg,
                                      logits_processor=procs)
        return out[0, ids.shape[1]:].tolist()

    def generate(self, text: str | None = None, units: Sequence[int] | None = None, modality: str | None = None,
                 **kw: Any) -> Generation:
        """Continue (same modality; default) or translate (``modality`` = the other one) a text or unit prompt."""
        modality = modality or ("speech" if units is not None else "text")
        prompt = self.prompt_ids(text, units, modality)
        new = self.generate_ids(prompt, modality, **kw)
        return self.describe(prompt, new, modality)

    def describe(self, prompt: list[int], new: list[int], modality: str) -> Generation:
        """Split new ids into text and speech runs (the mode at the start is the prompt's last marker)."""
        last = [t for t in prompt if t in (self.text_id, self.speech_id)]
        mode = "speech" if last and last[-1] == self.speech_id else "text"
        stopped = bool(new) and new[-1] == self.eos_id
        runs: list[tuple[str, list[int]]] = [(mode, [])]
        for t in new:
            if t == self.eos_id:
                break
            if t in (self.text_id, self.speech_id):
                runs.append(("text" if t == self.text_id else "speech", []))
                continue
            kind = "text" if t < self.text_size else "speech" if self.unit_offset <= t < self.vocab_size else None
            if kind is None:  # [PAD] (never allowed) or an id past the vocabulary
                continue
            if runs[-1][0] != kind:
                runs.append((kind, []))
            runs[-1][1].append(t - self.unit_offset if kind == "speech" else t)
        segments, units, texts = [], [], []
        for kind, ids in runs:
            if not ids:
                continue
            if kind == "speech":
                units += ids
                segments.append({"kind": "speech", "units": ids})
            else:
                txt = self.text_tok.decode(ids) if self.text_tok else None
                texts.append(txt)
                segments.append({"kind": "text", "ids": ids, "text": txt})
        text = " ".join(t for t in texts if t) if self.text_tok else None
        return Generation(list(prompt), list(new), units, text, modality, stopped, segments)


def find_text_tokenizer(model_dir: str | Path, info: dict[str, Any]) -> TextTokenizer | None:
    """The text tokenizer speech_lm.json names (when that local path exists), else one saved in the model folder."""
    named = info.get("text_tokenizer")
    path = named.get("path") if isinstance(named, dict) else named
    for cand in ([path] if path else []) + [str(model_dir)]:
        try:
            return TextTokenizer(cand)
        except (FileNotFoundError, OSError, ValueError):
            continue
    return None
