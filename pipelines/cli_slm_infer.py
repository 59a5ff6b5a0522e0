"""CLI verb for inference with a trained speech LM: ``slmfactory slm generate``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

HELP = """Continue or translate a prompt with a trained speech LM
(a folder written by `slmfactory slm train`).

\b
Prompt (one of):
  --prompt-audio F.wav  the first --prompt-seconds (3) of F, turned into
                        units by the SAME tokenizer as the training data
                        (from the model's speech_lm.json, or --data OUT =
                        the interleaved run; --tokenizer/--kmeans override)
  --prompt-text "..."   text, normalised like the training transcripts
\b
--modality (every other id is masked out before sampling):
  speech  unit ids + end of sequence
  text    text ids + end of sequence
  any     everything
Default: the prompt's own modality (continuation). The other one translates:
text prompt + --modality speech = `[TEXT] words [SPEECH]` -> units;
audio prompt + --modality text -> text.
\b
Output: -o out.json (prompt, new ids, units, text, settings); -o out.wav
(audio) only for units of a codec with a decoder (tokenizer encodec/mimi):
k-means units have no vocoder. Without -o: JSON on stdout.
Sampling (RECIPES.md): temperature 0.8, top-k 25, 150 new tokens;
--temperature 0 is greedy; --seed fixes the sample.
\b
Examples:
  slmfactory slm generate out/slm --prompt-audio clip.flac -o cont.json
  slmfactory slm generate out/slm --prompt-text "the cat sat" \\
      --modality speech -o units.json
"""


def generate_cmd(
    model: Path = typer.Argument(..., help="speech LM folder (Hugging Face model + speech_lm.json)"),
    prompt_audio: Optional[Path] = typer.Option(None, help="audio prompt (any format ffmpeg/soundfile reads)"),
    prompt_seconds: float = typer.Option(3.0, help="seconds of the audio prompt to keep (0 = all)"),
    prompt_text: Optional[str] = typer.Option(None, help="text prompt"),
    modality: Optional[str] = typer.Option(None, help="speech | text | any (default: the prompt's modality)"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="out.json, or out.wav (codec units only)"),
    max_new_tokens: int = typer.Option(150), temperature: float = typer.Option(0.8), top_k: int = typer.Option(25),
    seed: int = typer.Option(0),
    data: Optional[Path] = typer.Option(None, help="interleaved run folder whose tokenize stage made the training units"),
    tokenizer: Optional[str] = typer.Option(None, help="override: speech tokenizer name (spectral, hubert, encodec...)"),
    kmeans: Optional[str] = typer.Option(None, help="override: k-means path prefix"),
    checkpoint: Optional[str] = typer.Option(None, help="override: local tokenizer/codec weights folder"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    from .console import _fail as fail

    if (prompt_audio is None) == (prompt_text is None):
        fail("give exactly one prompt: --prompt-audio F.wav or --prompt-text \"...\"")
    if modality not in (None, "speech", "text", "any"):
        fail(f"--modality {modality}: choose speech, text or any")
    if out is not None and out.suffix not in (".json", ".wav"):
        fail(f"-o {out}: write .json (ids, units, text) or .wav (audio; codec units only)")
    from ..slm.generate import SpeechLM
    from .continuation import NoVocoder, continue_audio, units_to_audio

    try:
        lm = SpeechLM.load(model, device=device)
        gen_kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
        stage = None
        if prompt_audio is not None:
            over = {"tokenizer": tokenizer, "kmeans": kmeans, "checkpoint": checkpoint}
            res, stage = continue_audio(lm, prompt_audio, prompt_seconds or None, data, over,
                                        modality=modality or "speech",
                                        need_audio=out is not None and out.suffix == ".wav", **gen_kw)
        else:
            res = lm.generate(text=prompt_text, modality=modality or "text", **gen_kw)
        record = {**res.to_json(), "model": str(model), "settings": gen_kw,
                  "prompt_audio": str(prompt_audio) if prompt_audio else None,
                  "unit_tokenizer": stage.tokenizer_name if stage else None}
        if out is not None and out.suffix == ".wav":
            if stage is None:
                raise NoVocoder("-o .wav needs codec units from an audio prompt's tokenizer; use -o out.json "
                                "(text prompts: pass --prompt-audio or write JSON)")
            import soundfile as sf

            wav, sr = units_to_audio(stage, res.units)
            sf.write(str(out), wav, sr)
            out.with_suffix(".json").write_text(json.dumps(record, indent=1))
            typer.echo(f"{out}: {len(wav) / sr:.2f} s from {len(res.units)} units (+ {out.with_suffix('.json')})")
        elif out is not None:
            out.write_text(json.dumps(record, indent=1))
            typer.echo(f"{out}: {len(res.tokens)} new tokens, {len(res.units)} units, text: {res.text!r}")
        else:
            typer.echo(json.dumps(record))
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))


def register(slm_app: typer.Typer) -> None:
    slm_app.command("generate", help=HELP)(generate_cmd)
