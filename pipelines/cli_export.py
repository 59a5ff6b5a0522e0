"""CLI verb ``slmfactory export``: a run folder -> Hugging Face / chat / Lhotse layouts, and the Hub."""
from __future__ import annotations

from pathlib import Path

import typer

from .console import _fail, console

TO_HELP = ("hf (Parquet + card, an Audio column: datasets.load_dataset(OUT)), lhotse (recordings, supervisions "
           "and cuts JSONL.gz) or lhotse-shar (lhotse + Shar tars; needs the lhotse extra)")
FORMAT_HELP = ("a synthesis run as trainer-ready chat: hf-chat (messages with text/audio content items) or "
               "sharegpt (LLaMA-Factory: <audio> placeholders + audios files + dataset_info.json)")


def export(
    path: Path = typer.Argument(..., help="a run folder or manifest folder (with --push-to-hub alone: any "
                                          "folder with a README.md card, or a run folder)"),
    to: str = typer.Option(None, "--to", help=TO_HELP),
    fmt: str = typer.Option(None, "--format", help=FORMAT_HELP),
    out: Path = typer.Option(None, "-o", "--out", help="where to write the export (a new or empty folder)"),
    sample_rate: int = typer.Option(None, "--sample-rate", help="one rate for every clip, resampled with soxr "
                                    "(default 16000 for hf and chat formats; lhotse-shar: the source rate)"),
    push_to_hub: str = typer.Option(None, "--push-to-hub", metavar="REPO",
                                    help="then upload the export (or PATH itself) to this Hub dataset repo"),
    token: str = typer.Option(None, "--token", help="Hub token (default: $HF_TOKEN or your `hf auth login`)"),
    endpoint: str = typer.Option(None, "--endpoint", help="Hub URL (default: $HF_ENDPOINT or huggingface.co)"),
    private: bool = typer.Option(False, "--private", help="create the Hub repo as private"),
) -> None:
    """Export a run as a Hugging Face dataset, trainer-ready chat data or Lhotse manifests; push to the Hub."""
    from ..manifests.export import TARGETS, export as do_export
    from ..synth.chat_formats import FORMATS, export_chat

    if to and fmt:
        _fail("give --to or --format, not both")
    if not (to or fmt or push_to_hub):
        _fail(f"say what to write: --to {'|'.join(TARGETS)}, --format {'|'.join(FORMATS)}, or --push-to-hub REPO")
    if to and to not in TARGETS:
        _fail(f"--to must be {' or '.join(TARGETS)}, got {to!r}")
    if fmt and fmt not in FORMATS:
        _fail(f"--format must be {' or '.join(FORMATS)}, got {fmt!r}")
    if (to or fmt) and out is None:
        _fail("-o/--out is required with --to/--format (a new or empty folder)")
    if not path.exists():
        _fail(f"{path}: not found")
    try:
        if to:
            opts = {} if sample_rate is None else {"sampling_rate": sample_rate}
            console.print(f"exported to [bold]{do_export(path, to, out, **opts) or out}[/]")
        elif fmt:
            res = export_chat(path, fmt, out, **({} if sample_rate is None else {"sample_rate": sample_rate}))
            left = f", {len(res['skipped'])} left out (listed in {out}/README.md)" if res["skipped"] else ""
            console.print(f"exported {res['rows']} conversations ({fmt}, {res['sample_rate']} Hz) to [bold]{out}[/]{left}")
        if push_to_hub:
            from ..manifests.hub_push import push_to_hub as push

            try:
                res = push(out if (to or fmt) else path, push_to_hub, token=token, endpoint=endpoint, private=private)
            except (FileNotFoundError, ValueError):
                raise
            except Exception as e:  # noqa: BLE001 - HTTP/auth errors of the Hub: say where and what, no traceback
                _fail(f"push to {push_to_hub} failed ({type(e).__name__}: {e}); check --token/$HF_TOKEN and --endpoint")
            console.print(f"pushed {len(res['files'])} files to [bold]{res['url']}[/]")
    except (FileExistsError, FileNotFoundError, ValueError, ImportError) as e:
        _fail(str(e))


def register(app: typer.Typer) -> None:
    app.command()(export)
