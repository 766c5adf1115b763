"""The widget's size budget holds (the check ``python -m bench.widget --size`` runs)."""

from __future__ import annotations

import subprocess
import sys

from bench import widget
from tests.conftest import ROOT


def test_the_widget_script_stays_within_its_gzipped_size_budget() -> None:
    report = widget.size()
    assert report["script"] == f"static/webchat/parley-webchat.{widget.widget_version()}.js"
    assert 0 < report["gzipped_bytes"] <= widget.BUDGET_GZIPPED == 30 * 1024
    assert report["ok"] is True


def test_the_size_check_prints_one_json_line_and_exits_zero_within_budget() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.widget", "--size"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    assert '"bench": "widget"' in done.stdout
