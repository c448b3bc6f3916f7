"""`earnwatch demo`: offline, on the bundled LUMN scenario, ending by itself."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_demo_alerts_the_reminder_the_miss_the_drop_and_the_target(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "demo", "--seconds", "12"],
        cwd=tmp_path,  # no .env, no rules.yaml: the demo needs nothing
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    order = [
        out.index(f"LUMN · {rule}")
        for rule in (
            "earnings-tomorrow",
            "revenue-miss",
            "post-earnings-drop",
            "below-median-target",
        )
    ]
    assert order == sorted(order)
    assert "revenue: $3.041B vs $3.08B (-1.3%), while EPS beat: 0.23 vs -0.21 (+209.5%)" in out
    assert "($8.46 before it" in out
    assert "fell through the $7.56 median analyst target" in out
    assert "4 alert(s) fired, 4 delivered" in out
    assert "Draw this run: earnwatch replay lumn-q4-2025 --instant --plot lumn.png" in out
    assert "Traceback" not in result.stderr
