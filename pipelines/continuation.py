"""Speech continuation from an audio prompt: audio -> units (the training data's tokenizer) -> speech LM -> units
-> audio where a codec decoder exists.

Why here: it needs the speech tokenizer (``tokenize/``) and the speech LM (``slm/``) together, and only
``pipelines/`` may import both. The prompt must be tokenized EXACTLY like the training data (same features,
centroids, dedup, offset), or the model reads units from another alphabet: the tokenize parameters come from the
model's ``speech_lm.json`` (``tokenize``), else from the interleaved run that made the data (``OUT/run.json`` or
``OUT/packed/dataset_info.json``), and the resulting tokenizer label is checked against the labels the model was
trained on (``unit_tokenizer``). The prompt goes through ``TokenizeStage`` itself, so dedup/BPE/offset match.

Audio out: units from a neural codec (``encodec``/``mimi``, one codebook) decode with that codec's own decoder.
k-means units (spectral, HuBERT) have no vocoder in slmfactory: asking for audio raises ``NoVocoder``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..manifests.audio import load_audio
from ..slm.generate import Generation, SpeechLM
from ..tokenize.stage import TokenizeStage


class NoVocoder(ValueError):
    """The units have no decoder to audio."""


def tokenize_params(info: dict[str, Any], data: str | Path | None = None,
                    overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tokenize-stage parameters for prompts: ``overrides`` > speech_lm.json ``tokenize`` > the run folder ``data``."""
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    base = info.get("tokenize")
    if base is None and data is not None:
        base = _from_run(Path(data))
    if base is None and "tokenizer" not in over:
        raise ValueError("which speech tokenizer made the training units is unknown: pass --data OUT (the "
                         "interleaved run folder) or --tokenizer/--kmeans/--checkpoint as in that recipe's `tokenize` stage")
    return {**dict(base or {}), **over}


def _from_run(out: Path) -> dict[str, Any] | None:
    """The ``tokenize`` stage params recorded by a run folder (run.json) or its packed set (dataset_info.json)."""
    run, info = out / "run.json", out / "packed" / "dataset_info.json"
    if info.exists() and json.loads(info.read_text()).get("tokenize") is not None:
        return dict(json.loads(info.read_text())["tokenize"])
    if run.exists():
        rec = json.loads(run.read_text())
        for st in (rec.get("recipe") or rec).get("stages", []):
            if st.get("uses") == "tokenize":
                return dict(st.get("params") or {})
    if not out.exists():
        raise FileNotFoundError(f"--data {out}: no such folder; give the interleaved run's output folder")
    raise FileNotFoundError(f"{out}: no run.json or packed/dataset_info.json with a `tokenize` stage; give the "
                            f"interleaved run's output folder")


def prompt_units(audio: str | Path, seconds: float | None, params: dict[str, Any],
                 trained_on: Sequence[str] | None = None) -> tuple[list[int], TokenizeStage]:
    """Units of the first ``seconds`` of ``audio`` (all of it when None), and the stage that made them."""
    wav, _ = load_audio(str(audio), 0.0, float(seconds) if seconds else None)
    stage = TokenizeStage(**params)
    if stage.multi:
        raise ValueError(f"{stage.tokenizer_name} gives {stage.tok.num_codebooks} codebooks per frame; speech LMs "
                         f"here train on one stream: use num_codebooks=1")
    labels = [t for t in (trained_on or []) if t]
    if labels and stage.tokenizer_name not in labels:
        raise ValueError(f"the prompt's units would come from {stage.tokenizer_name} but the model was trained on "
                         f"{labels}; pass the training run's tokenize parameters (--data OUT)")
    out = stage({"id": ["prompt"], "audio": [wav]})
    if out["error"][0]:
        raise ValueError(f"{audio}: {out['error'][0]}")
    # a one-codebook codec gives (1, T) today (tokenize/codec.py returns (Q, T) for every Q): flatten to (T,)
    return [int(u) for u in np.asarray(out["units"][0]).reshape(-1)], stage


def continue_audio(lm: SpeechLM, audio: str | Path, seconds: float | None = 3.0, data: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, modality: str = "speech", need_audio: bool = False,
                   **gen: Any) -> tuple[Generation, TokenizeStage]:
    """Tokenize the audio prompt like the training data and continue it (``modality=text``: transcribe-like).
    ``need_audio``: raise ``NoVocoder`` before generating when the units cannot become audio."""
    params = tokenize_params(lm.info, data, overrides)
    trained_on = lm.info.get("unit_tokenizer")
    units, stage = prompt_units(audio, seconds, params, [trained_on] if isinstance(trained_on, str) else trained_on)
    if need_audio:
        check_vocoder(stage)
    return lm.generate(units=units, modality=modality, **gen), stage


def check_vocoder(stage: TokenizeStage) -> Any:
    """The codec model that decodes ``stage``'s units, or ``NoVocoder`` saying why there is none and the fix."""
    tok = stage.tok
    model = getattr(tok, "model", None)
    if getattr(tok, "needs_kmeans", True) or model is None or not hasattr(model, "decode"):
        raise NoVocoder(f"units from {stage.tokenizer_name} are k-means clusters of speech features; slmfactory has "
                        f"no vocoder for them. Write the units instead (-o out.json), or train on codec units "
                        f"(tokenize params tokenizer: encodec or mimi, checkpoint: LOCAL_DIR, num_codebooks: 1) "
                        f"to get audio out")
    if stage.dedup or stage.bpe or stage.offset:
        raise NoVocoder(f"{stage.tokenizer_name}: deduplicated/BPE/offset units cannot be decoded back to frames; "
                        f"train on plain codec units to get audio out")
    return model


def units_to_audio(stage: TokenizeStage, units: Sequence[int]) -> tuple[np.ndarray, int]:
    """Waveform (float32 mono) and sample rate of codec ``units``; ``NoVocoder`` for k-means units."""
    import torch

    model = check_vocoder(stage)
    if not len(units):
        return np.zeros(0, np.float32), int(stage.tok.sr)
    codes = torch.tensor([list(units)], dtype=torch.long, device=model.device)[:, None, :]  # (B=1, Q=1, T)
    with torch.inference_mode():
        if type(model).__name__ == "EncodecModel":
            wav = model.decode(codes[None], [None]).audio_values  # (chunks=1, B, Q, T) in
        else:  # MimiModel
            wav = model.decode(codes).audio_values
    return wav[0, 0].float().cpu().numpy(), int(stage.tok.sr)
