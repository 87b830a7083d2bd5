# Labelwise: `docker build -t labelwise:0.1.0 .` (or `docker compose up`, see compose.yaml).
# BASE_IMAGE must be a Debian-based image with Python 3.11+ (`python3`, venv and headers), as the official one is.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Build stage: compile the C kernel into a virtual environment and derive the int8 sentence encoder once.
FROM ${BASE_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/labelwise/venv
ENV PATH=/opt/labelwise/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip install . \
    && python -c "import labelwise.engines._kernel"
# The encoder (embeddings, zero-shot, the embedding engine) is derived here, not on a container's first request.
RUN python -c "from pathlib import Path; from labelwise.encoder.files import prepare; prepare(Path('/opt/labelwise/encoder'))"

# Runtime stage: the same base without a compiler, the virtual environment and encoder copied in, not root.
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 10001 labelwise \
    && useradd --uid 10001 --gid labelwise --no-create-home --home-dir /data --shell /usr/sbin/nologin labelwise \
    && mkdir /data \
    && chown labelwise:labelwise /data
COPY --from=build /opt/labelwise /opt/labelwise
COPY deploy/docker-entrypoint.sh /usr/local/bin/labelwise-entrypoint
ENV PATH=/opt/labelwise/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LABELWISE_DATA_DIR=/data \
    LABELWISE_ENCODER_DIR=/opt/labelwise/encoder \
    LABELWISE_HOST=0.0.0.0 \
    LABELWISE_PORT=8000
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LABELWISE_PORT', '8000') + '/health', timeout=4)"]
ENTRYPOINT ["labelwise-entrypoint"]
CMD ["serve"]
