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


def test_reading_a_finished_run_imports_neither_torch_nor_the_simulator() -> None:
    """plot and compare read run folders (rt1_sim.run_layout names their files); the configs and the
    network presets read and check a config: none of them needs torch or pybullet."""
    code = (
        "import sys\n"
        "import rt1_sim.plot, rt1_sim.compare, rt1_sim.run_layout, rt1_sim.config, rt1_sim.config_loader\n"
        "import rt1_sim.model.presets\n"
        "heavy = [m for m in ('torch', 'pybullet') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


COLLECT = ["collect", "--out", "x", "--episodes", "1"]  # required options, not shorthands


@pytest.mark.parametrize(
    ("argv", "key", "value", "other"),
    [
        (["eval", "--episodes", "3"], "episodes", 3, 9),
        (["eval", "--seed-start", "7"], "seed_start", 7, 9),
        (["eval", "--policy", "random"], "policy.name", "random", "scripted"),
        ([*COLLECT, "--noise", "0.3"], "noise", 0.3, 0.1),
        ([*COLLECT, "--clean-labels"], "clean_labels", True, False),
        ([*COLLECT, "--image-size", "64", "80"], "env_options.image_size", [64, 80], [32, 32]),
        (["benchmark", "--episodes-per-cell", "4"], "episodes_per_cell", 4, 9),
        (["benchmark", "--policy", "scripted"], "policy", "scripted", "random"),
    ],
)
def test_each_shorthand_is_the_override_of_the_key_it_names(
    argv: list[str], key: str, value: object, other: object
) -> None:
    """A shorthand gives the config that `--set` of its key gives, through the same loader, and wins over a
    `--set` of that key (it is applied after it)."""
    import argparse
    import importlib
    import json

    from rt1_sim.benchmark import SUITES_DIR, load_manifest
    from rt1_sim.config_loader import shorthand_overrides

    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    last = max(i for i, a in enumerate(argv) if a.startswith("--"))  # the shorthand under test
    required = argv[1:last] if argv[0] == "collect" else []

    def config(extra: list[str]) -> object:
        args = parser.parse_args([*required, *extra])
        if argv[0] == "benchmark":
            return load_manifest(SUITES_DIR, [*args.overrides, *shorthand_overrides(args, module.SHORTHANDS)])
        return module.config_from_args(args)

    shorthand = argv[last:]
    args = parser.parse_args([*required, *shorthand])
    [(label, override)] = shorthand_overrides(args, module.SHORTHANDS)
    assert override == f"{key}={json.dumps(value)}" and label == " ".join(shorthand)
    via_set = config(["--set", override])
    assert config(shorthand) == via_set != config(["--set", f"{key}={json.dumps(other)}"])
    assert config([*shorthand, "--set", f"{key}={json.dumps(other)}"]) == via_set
