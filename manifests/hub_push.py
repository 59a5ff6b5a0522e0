"""Push a dataset folder (an export, a chat export or a run folder) to the Hugging Face Hub.

Why ``huggingface_hub.HfApi.upload_folder`` and nothing of our own: it handles the preupload check, LFS/Xet
and commits; we only decide WHAT goes up. Every folder we write already has the Hub layout (``README.md``
with ``configs:`` + Parquet), so the repo loads with ``load_dataset(REPO)`` as the folder loads locally. A run
folder sends its card, ``run.json`` and the data configs only: ``_inputs/``, ``_state/``, locks and caches stay
home. The token comes from ``--token``, else ``$HF_TOKEN`` / the stored login (``huggingface_hub``'s own
lookup); the endpoint from ``--endpoint``, else ``$HF_ENDPOINT``, else the Hub.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

RUN_FOLDER_FILES = ["README.md", "run.json", "manifest/*.parquet", "errors/*.parquet", "packed/*"]
NEVER = [".*", "**/.*", "_*/**", "**/__pycache__/**", "*.lock", "*.tmp"]


def is_run_folder(folder: Path) -> bool:
    return (folder / "run.json").exists() and (folder / "manifest").is_dir()


def push_to_hub(folder: str | os.PathLike, repo_id: str, token: str | None = None, endpoint: str | None = None,
                private: bool = False, message: str | None = None) -> dict[str, Any]:
    """Create the dataset repo ``repo_id`` if needed and upload ``folder``; returns ``{url, commit, files}``.

    A run folder without a card gets one first (:func:`slmfactory.manifests.card.write_run_card`).
    """
    from huggingface_hub import HfApi

    src = Path(folder)
    if not (src / "README.md").exists() and not is_run_folder(src):
        raise FileNotFoundError(f"{src}: no README.md; push an export (`slmfactory export ... -o DIR`) or a run "
                                f"folder (it has run.json and manifest/)")
    allow = None
    if is_run_folder(src):
        if not (src / "README.md").exists():
            from .card import write_run_card

            write_run_card(src)
        allow = RUN_FOLDER_FILES
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token or None)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(src), repo_id=repo_id, repo_type="dataset", allow_patterns=allow,
                             ignore_patterns=NEVER, commit_message=message or f"Upload {src.name} with slmfactory")
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file() and _sent(p.relative_to(src), allow))
    return {"url": str(url), "commit": getattr(info, "oid", None), "commit_url": str(info), "files": files}


def _sent(rel: Path, allow: list[str] | None) -> bool:
    """What ``upload_folder`` sends with these patterns (for the summary)."""
    from huggingface_hub.utils import filter_repo_objects

    return bool(list(filter_repo_objects([rel.as_posix()], allow_patterns=allow, ignore_patterns=NEVER)))
