"""A small, deterministic support-ticket data set: four labels with overlapping vocabulary, so the trained model
is good but not perfect and its report has something to show (off-diagonal cells, calibration bins).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

LABELS: dict[str, tuple[list[str], list[str]]] = {
    "billing": (
        [
            "I was charged twice",
            "my invoice shows the wrong amount",
            "please refund the payment",
            "the subscription price went up",
            "why is there an extra fee on my card",
            "I need a copy of my receipt",
        ],
        ["this month", "on my statement", "for the annual plan", "after I cancelled"],
    ),
    "shipping": (
        [
            "my parcel has not arrived",
            "the courier lost my package",
            "tracking has not updated",
            "the delivery is late",
            "can I change the delivery address",
            "the box arrived damaged",
        ],
        ["since last week", "for my order", "with the express option", "again"],
    ),
    "account": (
        [
            "I cannot log in",
            "reset my password please",
            "how do I change my email address",
            "my account was locked",
            "delete my profile",
            "two-factor codes do not work",
        ],
        ["on the website", "since yesterday", "on my phone", "after the update"],
    ),
    "technical": (
        [
            "the app crashes on start",
            "the page shows an error",
            "sync fails with a timeout",
            "the export button does nothing",
            "notifications stopped working",
            "the dashboard is very slow",
        ],
        ["on my phone", "since the update", "on the website", "every time"],
    ),
}
# Words shared across labels make some tickets ambiguous on purpose.
_NOISE = ["hi", "hello", "thanks", "please help", "urgent", "order 1234", "as soon as possible", ""]


def write_tickets(path: Path, *, per_label: int, seed: int) -> Path:
    """Write `per_label` tickets per label to a CSV with `text` and `label` columns; returns `path`."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for label, (_, tails) in LABELS.items():
        for _ in range(per_label):
            # About one ticket in six borrows its opening and ending from another label, as mislabelled or
            # ambiguous tickets do in real data: the model cannot be perfect on them.
            source = label if rng.random() > 0.16 else rng.choice(sorted(LABELS))
            head = rng.choice(LABELS[source][0])
            tail = rng.choice(LABELS[source][1] if rng.random() < 0.5 else tails)
            text = " ".join(part for part in (rng.choice(_NOISE), head, tail, rng.choice(_NOISE)) if part)
            rows.append({"text": f"{text} #{rng.randrange(10_000)}", "label": label})
    rng.shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path
