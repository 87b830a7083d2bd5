# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export LABELWISE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export LABELWISE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export LABELWISE_SHARED_DATA ?= $(abspath ../shared/data)

# llama.cpp (the `llm-test` extra) is compiled by pip: only its CPU backend, no BLAS, no tests or examples, and not
# the multimodal library (LLAVA_BUILD: 51 of 178 objects; llama-cpp-python imports it only for image chat handlers).
# Pip's wheel cache keeps the build, so only the first install on a machine pays for it.
LLAMA_CMAKE_ARGS ?= -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF

.PHONY: install serve test lint typecheck unit bench-accuracy bench-serve container-smoke clean

# Browser tests drive Debian's headless Chromium; install it when missing and we may (root with apt-get).
/usr/bin/chromedriver:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: chromium and chromium-driver are not installed; browser tests will not run"; fi

# The C kernel (src/labelwise/engines/_kernel.c) is compiled in place by the editable install.
$(STAMP): pyproject.toml setup.py src/labelwise/engines/_kernel.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip install --quiet -e '.[dev,demo,ray,llm-test]'
	touch $(STAMP)

install: $(STAMP)

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

unit: $(STAMP) /usr/bin/chromedriver
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
