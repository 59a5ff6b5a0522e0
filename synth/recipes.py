"""Driver-side hooks of the synthesis recipes (``prepare``/``finalize`` in the YAML).

* ``extend_templates`` (prepare): ask the LLM for paraphrases of the instruction-template pool and write the
  extended pool to ``OUT/templates.json`` for the cross-modal stage (the pool is data, the LLM grows it).
* ``export`` (finalize): Hugging Face dataset + card under ``OUT/hf`` and the per-task / per-gate counts,
  printed and left in ``run.json`` extras.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .crossmodal import load_templates
from .export import export_hf_chat
from .llm import TEMPLATE_NOTE, describe_llm
from .paraphrase import Paraphraser

GATE_KEYS = ("gates", "min_grounding", "min_question_grounding", "min_answer_grounding", "min_request_overlap",
             "dedup_threshold", "max_words", "max_answer_words", "attempts")


def extend_templates(ctx: Any, llm: dict[str, Any] | None = None, per_template: int = 1, dest: str = "templates.json",
                     base: str | None = None, gen: dict[str, Any] | None = None,
                     max_templates: int | None = None) -> str:
    """Write ``OUT/<dest>``: the base pool plus validated LLM paraphrases (a ``tts`` one must keep ``{text}``)
    of the first ``max_templates`` templates per task (all when None)."""
    pool = load_templates(base)
    paraphraser = Paraphraser(llm=llm, gen={"max_tokens": 32, **(gen or {})}, seed=getattr(ctx, "seed", 0))
    extended = paraphraser.extend(pool, per_template, max_templates)
    path = Path(ctx.out_dir) / dest
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(extended, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    if hasattr(ctx, "extras"):
        ctx.extras["templates"] = {k: len(v) for k, v in extended.items()}
    return str(path)


def card_info(recipe: Any) -> dict[str, Any]:
    """Recipe, models, voices and gate thresholds as the recipe states them (for the dataset card)."""
    info: dict[str, Any] = {"recipe": getattr(recipe, "name", "?"), "recipe_path": getattr(recipe, "path", ""),
                            "seed": getattr(recipe, "seed", 0), "gates": {}}
    llms, tts = [], []
    for hook in getattr(recipe, "prepare", None) or []:
        if "llm" in (getattr(hook, "params", None) or {}):
            llms.append(describe_llm(hook.params["llm"]) + " (template pool paraphrases)")
    for st in getattr(recipe, "stages", []):
        p = dict(st.params or {})
        if "llm" in p:
            llms.append(describe_llm(p["llm"]))
        if st.uses in ("tts", "slmfactory.synth.tts_stage:TtsStage"):
            backend = f"{p.get('backend', 'piper')} {p.get('backend_params') or ''}".strip()
            tts.append(f"{backend} voices={p.get('voices') or 'all'}")
            p.setdefault("gates", {"text": {}, "duration": {}, "rate": {}, "wer": {}})
        kept = {k: p[k] for k in GATE_KEYS if k in p}
        if kept:
            info["gates"][st.name] = kept
    info["llm"] = "; ".join(dict.fromkeys(llms)) or "none"
    if any(x.startswith("template") for x in llms):
        info["llm_note"] = f"Rows of this run were {TEMPLATE_NOTE}."
    info["tts"] = "; ".join(tts) or "none"
    return info


def export(ctx: Any, dest: str | None = None) -> dict[str, Any]:
    """Finalize hook: HF export + card, then print counts per task and per gate."""
    stats = export_hf_chat(ctx.out_dir, dest, card_info(ctx.recipe))
    summary = {k: stats[k] for k in ("rows", "tasks", "errors", "errors_by_gate", "exported")}
    summary["skipped"] = len(stats["skipped"])
    if hasattr(ctx, "extras"):
        ctx.extras["synth"] = summary
    print_counts(getattr(ctx.recipe, "name", "synth"), stats, getattr(ctx, "console", None))
    return stats


def print_counts(name: str, stats: dict[str, Any], console: Any = None) -> None:
    lines = [f"[{name}] rows {stats['rows']} exported {stats.get('exported', 0)} rejected {stats['errors']}"]
    lines += [f"  task {k}: {v}" for k, v in stats["tasks"].items()]
    lines += [f"  rejected by gate {k}: {v}" for k, v in stats["errors_by_gate"].items()]
    text = "\n".join(lines)
    if console is not None:
        console.print(text, markup=False, highlight=False)
    else:
        print(text)
