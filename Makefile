# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export LABELWISE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export LABELWISE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export LABELWISE_SHARED_DATA ?= $(abspath ../shared/data)
# Label Studio, for the one test module that runs it (tests/integration/test_label_studio.py), pins many packages
# that clash with ours (numpy < 2.3 among them): it gets its own virtualenv. A clean clone (CI) would pay its
# install (minutes) and its first database migration (minutes) every time, so both live outside the repository,
# in a cache keyed on the Label Studio and Python versions (LABELWISE_CACHE, default ~/.cache/labelwise): made once
# per machine, shared by every checkout; the test copies the migrated template database per run.
LABELWISE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/labelwise
export LABELWISE_CACHE
LABEL_STUDIO_PIN := $(shell cat tests/support/label-studio.pin)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LABEL_STUDIO_HOME := $(LABELWISE_CACHE)/$(subst ==,-,$(LABEL_STUDIO_PIN))-py$(PYTHON_VERSION)
LABEL_STUDIO_VENV := $(LABEL_STUDIO_HOME)/venv
LABEL_STUDIO_STAMP := $(LABEL_STUDIO_VENV)/.installed
export LABELWISE_TEST_LABEL_STUDIO ?= $(LABEL_STUDIO_VENV)/bin/label-studio

# llama.cpp (the `llm-test` extra) is compiled by pip: only its CPU backend, no BLAS, no tests or examples, and not
# the multimodal library (LLAVA_BUILD: 51 of 178 objects; llama-cpp-python imports it only for image chat handlers).
# Not for the build machine's own CPU (GGML_NATIVE): on an Intel Xeon whose kernel does not grant AMX, that build's
# AMX tile instructions stopped the llama.cpp server with SIGILL at its first request. AVX2, FMA and F16C run on
# every x86 machine here (AMD EPYC and Intel Xeon alike). The wheel is built once per set of flags into the cache
# (pip's own wheel cache is keyed on the source, not the flags, and kept serving the broken build).
LLAMA_PIN := llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS := $(LABELWISE_CACHE)/llama-wheels-$(shell printf '%s' '$(LLAMA_PIN) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)

.PHONY: install serve test lint typecheck unit bench-accuracy bench-serve container-smoke clean clean-cache

# Browser tests drive Debian's headless Chromium; install it when missing and we may (root with apt-get).
/usr/bin/chromedriver:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: chromium and chromium-driver are not installed; browser tests will not run"; fi

# The C kernel (src/labelwise/engines/_kernel.c) is compiled in place by the editable install.
$(STAMP): pyproject.toml setup.py src/labelwise/engines/_kernel.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	mkdir -p $(LABELWISE_CACHE)
	flock $(LABELWISE_CACHE)/llama.lock sh -c 'ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 && exit 0; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip wheel --quiet --no-deps \
		--no-cache-dir -w $(LLAMA_WHEELS).tmp "$(LLAMA_PIN)" && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS)'
	$(BIN)/python -m pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[dev,demo,ray,labelstudio,train-transformer,llm-test]'
	touch $(STAMP)

# Under a lock (two checkouts may run make at once); an interrupted install leaves no stamp and is redone.
$(LABEL_STUDIO_STAMP):
	mkdir -p $(LABEL_STUDIO_HOME)
	flock $(LABEL_STUDIO_HOME)/install.lock sh -c 'test -f $(LABEL_STUDIO_STAMP) && exit 0; \
		rm -rf $(LABEL_STUDIO_VENV) && $(PYTHON) -m venv $(LABEL_STUDIO_VENV) && \
		$(LABEL_STUDIO_VENV)/bin/python -m pip install --quiet "$(LABEL_STUDIO_PIN)" && touch $(LABEL_STUDIO_STAMP)'

install: $(STAMP) $(LABEL_STUDIO_STAMP)

serve: $(STAMP)
	$(BIN)/labelwise demo
	$(BIN)/labelwise serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(LABEL_STUDIO_STAMP) /usr/bin/chromedriver
	$(BIN)/pytest -q

test: lint typecheck unit

# Builds the image with podman on a debootstrapped Debian base and runs it as compose.yaml does (minutes; root).
container-smoke: $(STAMP)
	$(BIN)/python -m tests.containers.container_smoke

bench-accuracy: $(STAMP)
	$(BIN)/python bench/accuracy.py

bench-serve: $(STAMP)
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The Label Studio virtualenv and migrated database template that every checkout on this machine shares.
clean-cache:
	rm -rf $(LABEL_STUDIO_HOME)
