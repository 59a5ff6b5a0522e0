"""CLI verbs of tokenize/: `slmfactory kmeans train|import` and `slmfactory bpe train`.

Heavy imports (torch, faiss, transformers) happen inside the commands so `slmfactory --help` stays fast.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from ..manifests.registry import TOKENIZERS
from .console import _fail

kmeans_app = typer.Typer(help="Train or import k-means centroids for speech units (.npy + JSON, never pickle).",
                         no_args_is_help=True)
bpe_app = typer.Typer(help="Sentencepiece BPE over unit sequences (acoustic BPE).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(kmeans_app, name="kmeans")
    app.add_typer(bpe_app, name="bpe")


def iter_rows(manifest: Optional[Path], corpus: Optional[Path]) -> Iterator[dict[str, Any]]:
    """Rows with audio_path from a Parquet manifest directory/file, or every audio file under a folder."""
    if manifest is not None:
        import pyarrow.dataset as ds

        if not manifest.exists():
            raise typer.BadParameter(f"{manifest}: manifest not found (expected OUT/manifest or a .parquet file)")
        cols = ["audio_path", "start", "duration"]
        d = ds.dataset(str(manifest), format="parquet")
        have = [c for c in cols if c in d.schema.names]
        if "audio_path" not in have:
            raise typer.BadParameter(f"{manifest}: no audio_path column; is it a segment manifest?")
        for batch in d.to_batches(columns=have):
            yield from batch.to_pylist()
    elif corpus is not None:
        from ..manifests.audio import AUDIO_EXTS, probe

        if not corpus.is_dir():
            raise typer.BadParameter(f"{corpus}: not a folder of audio files")
        for p in sorted(corpus.rglob("*")):
            if p.suffix.lower() in AUDIO_EXTS and p.is_file():
                try:
                    dur = probe(str(p)).duration  # header only: lets --hours budget real durations
                except Exception:  # noqa: BLE001 - unreadable files are skipped (with a warning) when sampled
                    dur = None
                yield {"audio_path": str(p), "start": 0.0, "duration": dur}
    else:
        raise typer.BadParameter("give --manifest OUT/manifest or a corpus folder")


@kmeans_app.command("train")
def kmeans_train(
    corpus: Optional[Path] = typer.Argument(None, help="folder of audio files (or use --manifest)"),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Parquet manifest dir, e.g. OUT/manifest"),
    out: Path = typer.Option(..., "-o", "--out", help="output path prefix: writes PREFIX.npy and PREFIX.json"),
    tokenizer: str = typer.Option("spectral", help=" | ".join(TOKENIZERS.names()) + " (a backend with frame "
                                  "features; codec backends need no k-means)"),
    preset: Optional[str] = typer.Option(None, help="gslm-hubert-base, hubert-base-l9, twist-25hz, ..."),
    checkpoint: Optional[str] = typer.Option(None, help="local checkpoint (file or HF directory)"),
    layer: Optional[int] = typer.Option(None, help="transformer layer (1-based, fairseq numbering)"),
    arch: Optional[str] = typer.Option(None, help="torchaudio architecture for --tokenizer hubert"),
    k: Optional[int] = typer.Option(None, "-k", help="number of units (default: preset's, else 100)"),
    hours: float = typer.Option(1.0, help="hours of audio to sample for training"),
    max_points_per_centroid: int = typer.Option(256, help="faiss subsamples to k*this frames; raise to use all"),
    niter: int = typer.Option(25, help="Lloyd iterations (faiss default 25)"),
    init: str = typer.Option("k-means++", help="k-means++ (seeding as fairseq/sklearn) or random (faiss default)"),
    seed: int = typer.Option(1369, help="sampling and k-means seed (fairseq default 1369)"),
    standardize: str = typer.Option("auto", help="cluster z-scored features: auto (spectral yes, neural layers "
                                    "no, as fairseq) | true | false; the mean/std are stored in PREFIX.json"),
    precision: Optional[str] = typer.Option(None, help="fp32 | bf16 | fp16 (default per device)"),
    device: str = typer.Option("auto"),
    allow_random: bool = typer.Option(False, hidden=True, help="random HuBERT weights (tests/benchmarks only)"),
) -> None:
    """Sample features from a corpus and fit k-means with faiss (GPU when available)."""
    from rich.console import Console

    from ..tokenize import kmeans as km
    from ..tokenize.factory import build_features
    from ..tokenize.presets import preset as get_preset

    if k is None:
        k = get_preset(preset)["k"] if preset else 100
    try:
        ext = build_features(tokenizer, checkpoint=checkpoint, layer=layer, arch=arch, device=device,
                             precision=precision, preset=preset, allow_random=allow_random)
    except ValueError as e:  # an unknown or k-means-less tokenizer, a missing checkpoint: say so, no traceback
        _fail(str(e))
    model = km.train_from_rows(iter_rows(manifest, corpus), ext, k=k, hours=hours, seed=seed,
                               max_points_per_centroid=max_points_per_centroid, niter=niter, init=init,
                               extra_meta=dict(km.extractor_meta(ext), preset=preset), standardize=standardize)
    npy = model.save(out)
    m = model.meta
    Console().print(f"k-means k={k} on {m['frames']} frames ({m['sample_hours']} h, {m['sample_rows']} files) of "
                    f"{ext.label} in {m['train_seconds']} s -> {npy} (+ .json)")


@kmeans_app.command("import")
def kmeans_import(
    src: Path = typer.Argument(..., help="fairseq/textlesslib k-means file (joblib pickle) or a .npy"),
    out: Path = typer.Option(..., "-o", "--out", help="output path prefix"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="needed for joblib/sklearn files: unpickling "
                                      "runs code from the file; only use files from a source you trust"),
    layer: Optional[int] = typer.Option(None, help="layer the centroids were trained on (recorded in the JSON)"),
    features: Optional[str] = typer.Option(None, help="feature extractor name to record, e.g. hubert_base-L6"),
) -> None:
    """Convert published centroids once to .npy + JSON so they can be used without pickle."""
    from rich.console import Console

    from ..tokenize import kmeans as km

    console = Console(stderr=True)
    if allow_pickle and src.suffix != ".npy":
        console.print(f"[bold yellow]WARNING[/]: unpickling {src} executes code stored in it. Continue only if you "
                      f"trust its source; the converted .npy + .json need no pickle afterwards.")
    try:
        model = km.import_sklearn(src, allow_pickle=allow_pickle, meta={"layer": layer, "features": features})
    except PermissionError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2)
    npy = model.save(out)
    Console().print(f"imported k={model.k} dim={model.dim} -> {npy}")


@bpe_app.command("train")
def bpe_train(
    manifest: Path = typer.Option(..., "--manifest", help="Parquet manifest with a units column"),
    out: Path = typer.Option(..., "-o", "--out", help="output prefix: writes PREFIX.model"),
    vocab_size: int = typer.Option(..., "--vocab-size", help="BPE vocabulary size (> number of units)"),
    k: Optional[int] = typer.Option(None, "-k", help="number of units (default: largest id + 1)"),
    dedup: bool = typer.Option(True, help="deduplicate units before training (if not already)"),
) -> None:
    """Train a unit BPE; apply it with the tokenize stage's `bpe:` parameter."""
    import pyarrow.dataset as ds
    from rich.console import Console

    from ..tokenize import postprocess

    seqs = [u for u in ds.dataset(str(manifest), format="parquet").to_table(columns=["units"]).column("units")
            .to_pylist() if u]
    if dedup:
        seqs = [postprocess.dedup(u)[0].tolist() for u in seqs]
    k = k or (max(max(u) for u in seqs) + 1 if seqs else 0)
    path = postprocess.train_bpe(seqs, out, vocab_size, k)
    Console().print(json.dumps({"model": str(path), "sequences": len(seqs), "k": k, "vocab_size": vocab_size}))
