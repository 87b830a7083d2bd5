"""The import contracts of pyproject.toml (`lint-imports`, run by `make lint`): they hold, they cover every part
of the package, and they do fail when a module imports upward."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import labelwise

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def run_lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the package found in `src`, with the project's contracts."""
    shutil.copy(ROOT / "pyproject.toml", cwd / "pyproject.toml")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_part_of_the_package_sits_in_a_layer() -> None:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    assert isinstance(layers["layers"], list)
    placed = {name.strip() for layer in layers["layers"] for name in str(layer).split("|")}
    placed.add("labelwise.client")  # stands alone: its own forbidden contract
    parts = {f"labelwise.{m.name}" for m in pkgutil.iter_modules(labelwise.__path__)}
    assert parts - placed == set(), "add the new module to a layer of [tool.importlinter] in pyproject.toml"


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = run_lint_imports(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "labelwise", src / "labelwise", ignore=shutil.ignore_patterns("*.so", "web"))
    # An engine that reaches up into the services, and a client module that reaches into the server.
    (src / "labelwise" / "engines" / "upward.py").write_text("from labelwise.services import classify\n")
    (src / "labelwise" / "client" / "leak.py").write_text("from labelwise.storage import db\n")
    work = tmp_path / "work"
    work.mkdir()
    result = run_lint_imports(src, work)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "labelwise.engines is not allowed to import labelwise.services" in result.stdout
    assert "labelwise.engines.upward -> labelwise.services.classify" in result.stdout
    assert "labelwise.client.leak -> labelwise.storage.db" in result.stdout
