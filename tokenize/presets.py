"""Named unit presets from published recipes (see /work/shared/RECIPES.md and docs/tokenize.md).

A preset fixes the extractor, layer, frame rate and k; the user still supplies the LOCAL checkpoint and the
k-means file (trained with `slmfactory kmeans train` or imported from the published one).
"""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # fairseq examples/textless_nlp/gslm/speech2unit, textlesslib: HuBERT-base LS960, layer 6, 50 Hz
    "gslm-hubert-base": {"tokenizer": "hubert", "arch": "hubert_base", "layer": 6, "frame_rate_hz": 50.0,
                         "k": 100, "k_choices": [50, 100, 200, 500]},
    # textlesslib checkpoint manager, slamkit default
    "hubert-base-l9": {"tokenizer": "hubert", "arch": "hubert_base", "layer": 9, "frame_rate_hz": 50.0, "k": 500},
    # TWIST / SpiRit-LM: mHuBERT-base 25 Hz (a transformers directory), layer 11
    "twist-25hz": {"tokenizer": "hf-hubert", "layer": 11, "frame_rate_hz": 25.0, "k": 500},
    # SpeechGPT utils/speech2unit: mHuBERT vp_en_es_fr_it3, layer 11
    "speechgpt": {"tokenizer": "hf-hubert", "layer": 11, "frame_rate_hz": 50.0, "k": 1000},
    # textlesslib mHuBERT 8 languages, layer 12
    "mhubert-8lang": {"tokenizer": "hf-hubert", "layer": 12, "frame_rate_hz": 50.0, "k": 2000},
    # offline default: MFCC + deltas + mean norm on the HuBERT 50 Hz grid
    "spectral": {"tokenizer": "spectral", "kind": "mfcc", "frame_rate_hz": 50.0, "k": 100},
}
# fairseq learn_kmeans.py (sklearn MiniBatchKMeans) settings, for imports and the benchmark's baseline
FAIRSEQ_KMEANS = {"init": "k-means++", "batch_size": 10000, "max_iter": 150, "n_init": 20, "seed": 1369,
                  "max_no_improvement": 100, "tol": 0.0, "reassignment_ratio": 0.0}
EDGE_PADDING_SAMPLES = 40  # slamkit
MAX_CHUNK_SECONDS = 100.0  # textlesslib


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise KeyError(f"unknown unit preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])
