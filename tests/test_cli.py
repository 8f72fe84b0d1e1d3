"""The command line as a new user meets it: every --help works, no PyBullet banner, a mistake is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rt1_sim.cli import SUBCOMMANDS, main

BANNERS = ("pybullet build time", "argv[0]=")


@pytest.mark.parametrize("command", [[], *([name] for name in SUBCOMMANDS)])
def test_every_help_prints_usage(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: rt1-sim" in capsys.readouterr().out


def test_pybullet_prints_no_banner_on_import_connect_or_help() -> None:
    code = (
        "import gymnasium as gym, envs; env = gym.make('PandaPick-v0'); env.reset(seed=0); env.close(); "
        "print('done')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout == "done\n" and not any(b in proc.stderr for b in BANNERS), proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "rt1_sim.cli", "collect", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and not any(b in proc.stdout + proc.stderr for b in BANNERS)


def test_output_printed_inside_the_quiet_block_by_python_survives(capfd: pytest.CaptureFixture[str]) -> None:
    from envs.quiet import quiet_c_output

    print("before", flush=False)  # buffered in Python: must reach the terminal, not /dev/null
    with quiet_c_output():
        pass
    print("after")
    assert capfd.readouterr().out == "before\nafter\n"
