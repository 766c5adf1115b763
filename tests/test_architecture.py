"""The direction of imports holds (pyproject.toml [tool.importlinter]), and breaks loudly when crossed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_code_keeps_the_direction_of_imports() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_import_against_the_direction_breaks_the_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    # The customers app reaching up into the inbox, and the core naming a concrete connector.
    (tmp_path / "customers" / "upward.py").write_text("from inbox import models\n")
    (tmp_path / "inbox" / "upward.py").write_text("import connectors.twilio.messaging\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1
    assert "customers.upward -> inbox.models" in result.stdout
    assert "inbox.upward -> connectors.twilio.messaging" in result.stdout
