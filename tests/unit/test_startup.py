"""What start-up avoids: modules a server never needs (redis-py without Redis, scipy), and collections while the app
is imported."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from labelwise.api.server import _collector_paused


def test_an_app_without_redis_never_imports_redis_py(tmp_path: Path) -> None:
    code = (
        "import sys; from labelwise.config import Settings; from labelwise.api.app import create_app; "
        f"create_app(Settings(data_dir={str(tmp_path)!r}, default_rate_limit='10/second')); "
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_collector_is_paused_only_inside_the_block() -> None:
    assert gc.isenabled()
    with _collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_serving_a_linear_model_never_imports_scipy(tmp_path: Path) -> None:
    from labelwise.domain import LabeledTexts
    from labelwise.engines.linear import LinearEngine

    texts = [f"{word} order number {i}" for i, word in enumerate(["refund", "parcel"] * 10)]
    data = LabeledTexts(texts, [(t.split()[0],) for t in texts])
    engine = LinearEngine(c_grid=(1.0,)).fit(data, data)
    engine.save(tmp_path)
    code = (
        "import sys; from pathlib import Path; import labelwise.api.app; "
        "from labelwise.engines.linear import LinearEngine; "
        f"LinearEngine.load(Path({str(tmp_path)!r})).predict_proba(['a refund please', 'where is my parcel']); "
        "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_metrics_made_in_memory_before_serve_are_moved_to_files(tmp_path: Path) -> None:
    """The CLI imports prometheus-client (through the package) before `serve` sets PROMETHEUS_MULTIPROC_DIR; the
    parent moves the metrics to files before forking, or says it cannot. Also guards the two non-public members of
    prometheus-client this relies on: a newer release that drops them fails here."""
    code = (
        "import os, sys; from labelwise.monitoring import metrics; "
        "from prometheus_client import values; assert not values.ValueClass._multiprocess; "
        f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(tmp_path)!r}; "
        "from labelwise.api.server import _metrics_in_files; assert _metrics_in_files(); "
        "metrics.CACHE_HITS.inc(3); metrics.observe_request('/v1/classify', 200, 'm', '1.0.0', 2.0); "
        "print(metrics.render().decode())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert list(tmp_path.glob("counter_*.db"))
    assert "labelwise_cache_hits_total 3.0" in out
    assert 'labelwise_requests_total{model="m",route="/v1/classify",status="200",version="1.0.0"} 1.0' in out
