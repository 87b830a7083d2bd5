"""Cutting token ids into windows and grouping windows into batches (pure functions, no model)."""

from __future__ import annotations

import numpy as np

from labelwise.encoder.windows import WindowAggregator, batch_bytes, chunk_windows, split_windows

CLS, SEP = 101, 102


def tokens(n: int) -> list[int]:
    return [CLS, *range(1000, 1000 + n - 2), SEP]


def test_a_short_text_is_one_window() -> None:
    assert split_windows(tokens(10), 16, 4) == [tokens(10)]


def test_long_text_windows_overlap_and_cover_every_token() -> None:
    ids = tokens(50)
    windows = split_windows(ids, 16, 4)
    assert all(w[0] == CLS and w[-1] == SEP and len(w) <= 16 for w in windows)
    bodies = [w[1:-1] for w in windows]
    assert bodies[0][-4:] == bodies[1][:4]  # consecutive windows share `overlap` tokens
    covered = {t for body in bodies for t in body}
    assert covered == set(ids[1:-1])


def test_truncate_keeps_only_the_first_window() -> None:
    assert split_windows(tokens(50), 16, 4, truncate=True) == [[*tokens(50)[:15], SEP]]


def test_chunks_respect_rows_and_token_budget() -> None:
    windows = [tokens(n) for n in (5, 40, 8, 40, 6, 40)]
    budget = batch_bytes(2, 40)
    batches = chunk_windows(windows, list(range(6)), max_rows=4, max_bytes=budget)
    assert sorted(int(o) for b in batches for o in b.owner) == list(range(6))
    assert [b.rows for b in batches] == [3, 2, 1]  # the three short ones, then the long ones two at a time
    for batch in batches:
        assert batch.rows <= 4
        assert batch_bytes(batch.rows, batch.input_ids.shape[1]) <= budget
        # Padding is masked out.
        assert batch.attention_mask.sum() == sum(len(windows[int(o)]) for o in batch.owner)


def test_chunks_respect_the_padded_token_budget_per_call() -> None:
    windows = [tokens(n) for n in (10, 12, 9, 11, 30, 10, 12)]
    batches = chunk_windows(windows, list(range(7)), max_rows=64, max_bytes=10**12, max_tokens=40)
    assert sorted(int(o) for b in batches for o in b.owner) == list(range(7))
    # Sorted by length: 9, 10, 10 (3 x 10 = 30); 11, 12, 12 (3 x 12 = 36); 30 alone.
    assert [b.rows for b in batches] == [3, 3, 1]
    assert all(b.input_ids.size <= 40 for b in batches)
    # A window longer than the budget still runs, alone.
    alone = chunk_windows([tokens(50), tokens(5)], [0, 1], max_rows=64, max_bytes=10**12, max_tokens=40)
    assert [b.input_ids.shape for b in alone] == [(1, 5), (1, 50)]


def test_mean_weights_windows_by_tokens_and_max_is_elementwise() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    owner = np.array([0, 0])
    mean = WindowAggregator(1, 2, "mean")
    mean.add(vectors, owner, np.array([3, 1]))
    np.testing.assert_allclose(mean.result()[0], np.array([3.0, 1.0]) / np.sqrt(10.0), rtol=1e-6)
    maximum = WindowAggregator(1, 2, "max")
    maximum.add(vectors, owner, np.array([3, 1]))
    np.testing.assert_allclose(maximum.result()[0], np.array([1.0, 1.0]) / np.sqrt(2.0), rtol=1e-6)
