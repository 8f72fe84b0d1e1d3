"""A wheel works: built from a copy of the source, installed into a fresh environment (torch and the other
dependencies come from this machine, nothing from the network), it evaluates the bundled policy on the default
suite with `rt1-sim eval` and no config, finding assets and suites through importlib.resources."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANYWHERE = shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".pytest_cache")
TOP_LEVEL = {"build", "dist", "runs", "data"}  # outputs in the checkout; rt1_sim/data/ is a package


def _skip(folder: str, names: list[str]) -> set[str]:
    """What copytree leaves out: caches everywhere, run and dataset outputs at the top level only."""
    skipped = set(ANYWHERE(folder, names))
    return skipped | (TOP_LEVEL & set(names)) if Path(folder) == REPO else skipped


def _run(*cmd: str | Path, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def test_wheel_installs_and_runs_rt1_sim_eval(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_skip)
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        tmp_path / "wheels",
        source,
    )
    (wheel,) = (tmp_path / "wheels").glob("rt1_sim-*.whl")
    venv = tmp_path / "venv"
    # The dependencies come from the running interpreter's environment: its site-packages go on the venv's
    # path. (--system-site-packages would give the base interpreter's, which inside a virtualenv lack them.)
    _run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    venv_site = _run(bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    outer = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    (Path(venv_site.stdout.strip()) / "_running_environment.pth").write_text("\n".join(outer) + "\n")
    # --ignore-installed: this machine may have rt1-sim installed (editable); the venv gets its own copy.
    _run(bin_dir / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the source tree
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(
        bin_dir / "python",
        "-c",
        "import rt1_sim, envs; print(rt1_sim.__file__, envs.__file__)",
        cwd=work,
        env=env,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    # every module (rt1_sim.data included) comes from the wheel, not from an editable install elsewhere
    data = _run(
        bin_dir / "python", "-c", "import rt1_sim.data; print(rt1_sim.data.__file__)", cwd=work, env=env
    )
    assert Path(data.stdout.strip()).is_relative_to(venv), data.stdout
    out = work / "eval"
    _run(
        bin_dir / "rt1-sim",
        "eval",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--video",
        "none",
        "--out",
        out,
        cwd=work,
        env=env,
    )
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 2 and results["successes"] == 2
    assert results["policy"]["label"] == "rt1_cpu" and Path(results["policy"]["checkpoint"]).is_relative_to(
        venv
    )
    assert Path(results["config_file"]).is_relative_to(venv)  # the default suite, shipped in the wheel
    # The multi-task env's own asset (the drawer cabinet) and the benchmark's suites ship in the wheel too.
    check = (
        "import gymnasium as gym, envs; from rt1_sim import benchmark as bm; "
        "env = gym.make('PandaTabletop-v0', task='drawer'); env.reset(seed=0); env.close(); "
        "print(len(bm.load_manifest(bm.SUITES_DIR).splits), bm.SUITES_DIR)"
    )
    splits, suites = _run(bin_dir / "python", "-c", check, cwd=work, env=env).stdout.split()
    assert int(splits) >= 7 and Path(suites).is_relative_to(venv)
