"""What start-up avoids: modules a server without Redis never needs, and collections while the app is imported."""

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
