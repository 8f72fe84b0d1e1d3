"""The env-side scripts run at their smallest settings: env_speed (both envs), contact sheet, expert success."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str) -> str:
    cmd = [sys.executable, str(BENCHMARKS / script), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def test_env_speed_measures_the_tabletop_env():
    out = _run(
        "env_speed.py",
        "--env",
        "PandaTabletop-v0",
        "--task",
        "mix",
        "--steps",
        "5",
        "--image-size",
        "32",
        "32",
        "--json",
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert (
        result["env"] == "PandaTabletop-v0 task=mix" and result["steps_per_s"] > 0 and result["cameras"] == 2
    )


def test_expert_success_script_reports_every_attempt():
    out = _run("expert_success.py", "--families", "drawer", "--episodes", "2", "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["family"] == "drawer" and result["episodes"] == 2 and result["successes"] == 2


def test_contact_sheet_has_a_tile_per_family(tmp_path):
    from PIL import Image

    from envs import FAMILIES

    out = tmp_path / "sheet.png"
    _run("contact_sheet.py", "--out", str(out), "--size", "48")
    with Image.open(out) as image:
        assert image.width == 3 * 48 and image.height == -(-len(FAMILIES) // 3) * (48 + 44)
