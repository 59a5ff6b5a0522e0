"""Short stage names used in recipes -> ``module:Class``.

Why a table and not import-by-string everywhere: recipes stay readable (``uses: tokenize``) and nothing
in a YAML file is ever evaluated; a recipe may still name ``package.module:Class`` explicitly.
"""
from __future__ import annotations

import importlib
from typing import Any

STAGES: dict[str, str] = {
    # manifests / audio (issue: foundation)
    "decode": "slmfactory.stages.decode:DecodeStage",
    "vad_segment": "slmfactory.stages.segment:VadSegmentStage",
    "load_audio": "slmfactory.stages.decode:LoadAudioStage",
    # tokenize/
    "tokenize": "slmfactory.tokenize.stage:TokenizeStage",
    # stages/ (ASR, alignment, interleaving)
    "asr": "slmfactory.stages.asr:AsrStage",
    "normalize_text": "slmfactory.stages.textnorm:NormalizeTextStage",
    "align": "slmfactory.stages.align:AlignStage",
    "interleave": "slmfactory.stages.interleave:InterleaveStage",
    # synth/
    "tts": "slmfactory.synth.stage:TtsStage",
    "synth_crossmodal": "slmfactory.synth.stage:CrossModalStage",
    "synth_instruct": "slmfactory.synth.stage:InstructStage",
    "synth_sqa": "slmfactory.synth.stage:SqaStage",
}

# column present in a table -> "module:function(table, console)" that `slmfactory inspect` calls
INSPECTORS: dict[str, str] = {
    "units": "slmfactory.tokenize.inspect:describe",
    "tokens": "slmfactory.stages.inspect:describe",
    "messages": "slmfactory.synth.inspect:describe",
}


def resolve(name: str) -> Any:
    """A short name or ``module:attr`` -> the object. Raises with the known names on a typo."""
    target = STAGES.get(name, name)
    if ":" not in target:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(sorted(STAGES))}, or give 'package.module:Class'")
    mod, attr = target.split(":", 1)
    return getattr(importlib.import_module(mod), attr)
