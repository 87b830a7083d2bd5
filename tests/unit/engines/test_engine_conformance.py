"""The engine contract (engines/base.py), checked against every engine.

To add an engine, add one entry to ENGINES: a name and a function returning a new, unfitted instance with
settings small enough for these tiny datasets.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import shared_encoder

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.auto import AutoEngine
from labelwise.engines.base import Engine, HeadEngine
from labelwise.engines.embedding import EmbeddingEngine
from labelwise.engines.linear import LinearEngine
from labelwise.engines.zeroshot import ZeroShotEngine
from labelwise.errors import ConfigError, DataError, NotFittedError

ENCODER = shared_encoder()

ENGINES: dict[str, Callable[[], Engine]] = {
    "linear": lambda: LinearEngine(c_grid=(0.3, 1.0)),
    "embedding": lambda: EmbeddingEngine(encoder=ENCODER, c_grid=(4.0, 16.0)),
    "zeroshot": lambda: ZeroShotEngine(encoder=ENCODER),
    "auto": lambda: AutoEngine(encoder=ENCODER),
}

TOPICS = {
    "sport": ["goal", "match", "team", "score", "league", "coach", "referee", "stadium", "penalty", "striker"],
    "food": ["pasta", "recipe", "oven", "garlic", "dinner", "spicy", "bakery", "sauce", "chef", "noodles"],
    "tech": ["laptop", "software", "bug", "server", "keyboard", "update", "cloud", "python", "compiler", "chip"],
}
FILLER = ["the", "a", "today", "really", "very", "some", "my", "our", "it", "was", "is", "and", "then"]


def _sentence(rng: random.Random, topics: list[str]) -> str:
    words = [rng.choice(TOPICS[t]) for t in topics for _ in range(3)] + rng.sample(FILLER, 4)
    rng.shuffle(words)
    return " ".join(words)


def single_label_data(n: int, seed: int) -> LabeledTexts:
    """Sentences built from one topic's words plus filler; the topic is the label."""
    rng = random.Random(seed)
    labels = [sorted(TOPICS)[i % len(TOPICS)] for i in range(n)]
    return LabeledTexts([_sentence(rng, [label]) for label in labels], [(label,) for label in labels])


def multi_label_data(n: int, seed: int) -> LabeledTexts:
    """Sentences mixing one or two topics; the label set is the topics used."""
    rng = random.Random(seed)
    rows = [tuple(sorted(rng.sample(sorted(TOPICS), rng.choice([1, 1, 2])))) for _ in range(n)]
    return LabeledTexts([_sentence(rng, list(r)) for r in rows], rows)


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def fitted(engine_name: str) -> Engine:
    return ENGINES[engine_name]().fit(single_label_data(90, 1), single_label_data(60, 2))


@pytest.fixture(scope="module")
def fitted_multi(engine_name: str) -> Engine:
    return ENGINES[engine_name]().fit(multi_label_data(150, 3), multi_label_data(90, 4), multi_label=True)


def test_fit_returns_self(engine_name: str) -> None:
    engine = ENGINES[engine_name]()
    assert engine.fit(single_label_data(30, 5), single_label_data(15, 6)) is engine


def test_classes_are_sorted_label_names(fitted: Engine) -> None:
    assert fitted.classes_ == sorted(TOPICS)
    assert fitted.task_ is TaskType.SINGLE_LABEL
    assert fitted.thresholds_ is None


def test_proba_shape_range_and_rows_sum_to_one(fitted: Engine) -> None:
    data = single_label_data(30, 7)
    proba = fitted.predict_proba(data.texts)
    assert proba.shape == (30, len(TOPICS))
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_learns_the_synthetic_topics(fitted: Engine) -> None:
    data = single_label_data(60, 8)
    predicted = fitted.predict(data.texts)
    accuracy = np.mean([p == list(g) for p, g in zip(predicted, data.labels, strict=True)])
    assert accuracy >= 0.9


def test_not_fitted_error_before_fit(engine_name: str, tmp_path: Path) -> None:
    engine = ENGINES[engine_name]()
    with pytest.raises(NotFittedError):
        engine.predict_proba(["hello"])
    with pytest.raises(NotFittedError):
        engine.save(tmp_path)


@pytest.mark.parametrize("which", ["single", "multi"])
def test_save_load_round_trip_gives_identical_probabilities(
    which: str, fitted: Engine, fitted_multi: Engine, tmp_path: Path
) -> None:
    engine = fitted if which == "single" else fitted_multi
    engine.save(tmp_path)
    loaded = type(engine).load(tmp_path, encoder=ENCODER)
    texts = [*single_label_data(20, 9).texts, "", "unseen words only zzz", "ÜNÏCÖDÉ 東京 🙂"]
    np.testing.assert_array_equal(loaded.predict_proba(texts), engine.predict_proba(texts))
    assert loaded.classes_ == engine.classes_
    assert loaded.task_ is engine.task_
    if engine.thresholds_ is None:
        assert loaded.thresholds_ is None
    else:
        assert loaded.thresholds_ is not None
        np.testing.assert_array_equal(loaded.thresholds_, engine.thresholds_)
    assert loaded.get_params() == engine.get_params()


def test_artifacts_hold_no_pickle(fitted: Engine, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix not in {".pkl", ".pickle", ".joblib"}, path.name
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                for key in archive.files:
                    archive[key]
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


def test_params_are_json(fitted: Engine) -> None:
    assert json.loads(json.dumps(fitted.get_params())) == fitted.get_params()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_unicode_text_gets_valid_probabilities(fitted: Engine, text: str) -> None:
    proba = fitted.predict_proba([text])
    assert proba.shape == (1, len(fitted.classes_))
    assert np.all(np.isfinite(proba))
    assert np.all((proba >= 0) & (proba <= 1))
    assert abs(proba.sum() - 1.0) < 1e-9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=60), min_size=1, max_size=8))
def test_batch_equals_one_by_one(fitted: Engine, texts: list[str]) -> None:
    batch = fitted.predict_proba(texts)
    single = np.vstack([fitted.predict_proba([t]) for t in texts])
    # Engines may sum in float32 or in another order for batches: equal up to rounding.
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-6)


def test_empty_batch(fitted: Engine) -> None:
    assert fitted.predict_proba([]).shape == (0, len(fitted.classes_))


def test_multi_label_has_thresholds_and_independent_columns(fitted_multi: Engine) -> None:
    engine = fitted_multi
    assert engine.task_ is TaskType.MULTI_LABEL
    assert engine.classes_ == sorted(TOPICS)
    assert engine.thresholds_ is not None
    assert engine.thresholds_.shape == (len(TOPICS),)
    assert np.all((engine.thresholds_ > 0) & (engine.thresholds_ < 1))
    data = multi_label_data(60, 10)
    proba = engine.predict_proba(data.texts)
    assert np.all((proba >= 0) & (proba <= 1))
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent per-label probabilities
    predicted = engine.predict(data.texts)
    exact = np.mean([p == list(g) for p, g in zip(predicted, data.labels, strict=True)])
    assert exact >= 0.8


# What the engine base (engines/base.py, engines/targets.py) guarantees every engine ----------------------------

SPORT_ONLY = LabeledTexts(["a goal", "the match", "our team"], [("sport",), ("sport",), ("sport",)])


@pytest.mark.parametrize(
    ("train", "multi_label", "message"),
    [
        (LabeledTexts([], []), False, "train: no rows"),
        (
            LabeledTexts(["a goal", "pasta and a goal"], [("sport",), ("food", "sport")]),
            False,
            "train row 2: a single-label row needs exactly one label, found 2",
        ),
        (SPORT_ONLY, False, "train: a single-label classifier needs at least 2 labels, found 1"),
        (LabeledTexts(["a goal", "some pasta"], [(), ()]), True, "train: no row has a label"),
    ],
)
def test_every_engine_refuses_the_same_data_with_the_same_message(
    engine_name: str, train: LabeledTexts, multi_label: bool, message: str
) -> None:
    with pytest.raises(DataError) as refused:
        ENGINES[engine_name]().fit(train, single_label_data(15, 6), multi_label=multi_label)
    assert refused.value.message == message
    assert refused.value.param == "train"


def test_one_label_is_enough_for_multi_label(engine_name: str) -> None:
    engine = ENGINES[engine_name]().fit(SPORT_ONLY, SPORT_ONLY, multi_label=True)
    assert engine.classes_ == ["sport"]
    assert engine.predict_proba(["a goal"]).shape == (1, 1)


def test_an_empty_validation_split_is_refused_only_by_engines_that_need_one(engine_name: str) -> None:
    engine = ENGINES[engine_name]()
    assert isinstance(engine, HeadEngine)
    unseen = LabeledTexts(["a goal"], [("chess",)])  # its only row has a label train lacks: dropped
    for validation in (LabeledTexts([], []), unseen):
        if engine.needs_validation:
            with pytest.raises(DataError, match="validation: no rows with a label seen in train"):
                engine.fit(single_label_data(30, 5), validation)
        else:
            assert engine.fit(single_label_data(30, 5), validation).classes_ == sorted(TOPICS)


def test_engines_that_need_an_encoder_say_so_without_one(engine_name: str, tmp_path: Path) -> None:
    engine = ENGINES[engine_name]()
    if not engine.needs_encoder:
        return
    with pytest.raises(ConfigError, match="needs a sentence encoder"):
        type(engine)().fit(single_label_data(30, 5), single_label_data(15, 6))
    if engine_name == "auto":
        return  # auto loads its chosen candidate, which may need none
    engine.fit(single_label_data(30, 5), single_label_data(15, 6)).save(tmp_path)
    with pytest.raises(ConfigError, match="needs a sentence encoder"):
        type(engine).load(tmp_path)


def test_the_explanation_method_is_declared(fitted: Engine) -> None:
    assert fitted.explainer().explanation in {"linear", "leave_one_out"}
