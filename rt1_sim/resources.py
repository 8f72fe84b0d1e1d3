"""Files that ship with rt1-sim, found with `importlib.resources` wherever the project is installed.

The top-level folders `assets/` (robot model, bundled checkpoints), `eval_configs/` and `train_configs/` are
data-only packages of the distribution (an `__init__.py` each; setup.cfg includes their files as package
data): in a source checkout or an editable install they are read in place, from a wheel or a plain `pip
install .` from site-packages. (Regular packages rather than namespace ones: Python 3.10 and 3.11 cannot read
resources of a namespace package that an editable install maps.)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSETS, EVAL_CONFIGS, TRAIN_CONFIGS = "assets", "eval_configs", "train_configs"


def resource_path(package: str, *parts: str) -> Path:
    """The file `parts` of data package `package` (ASSETS, EVAL_CONFIGS or TRAIN_CONFIGS) as a filesystem path
    (the package is always installed unpacked); the path may not exist (callers check)."""
    traversable = resources.files(package)
    for part in parts:
        traversable = traversable.joinpath(part)
    return Path(str(traversable)).resolve()


def find_config(path: str | Path) -> Path:
    """`path` itself when it exists; otherwise, for `eval_configs/NAME` or `train_configs/NAME` (how the
    README and the shipped configs name them), the file shipped with rt1-sim, so those names work from any
    folder and from a wheel. Anything else is returned unchanged (the loader then reports it missing)."""
    path = Path(path)
    if path.exists() or len(path.parts) != 2 or path.parts[0] not in (EVAL_CONFIGS, TRAIN_CONFIGS):
        return path
    shipped = resource_path(*path.parts)
    return shipped if shipped.is_file() else path


# The bundled RT-1 policy per env id: what `--policy auto` (every suite's default) evaluates there.
BUNDLED_CHECKPOINTS = {"PandaPick-v0": "rt1_cpu.pt", "PandaTabletop-v0": "rt1_multitask_cpu.pt"}


def bundled_checkpoint(env_id: str) -> Path | None:
    """The RT-1 policy `rt1-sim eval` evaluates by default in env `env_id` (None: rt1-sim bundles none for it;
    the path may not exist in a checkout that lacks the file)."""
    name = BUNDLED_CHECKPOINTS.get(env_id)
    return resource_path(ASSETS, "checkpoints", name) if name is not None else None


def default_eval_suite() -> Path:
    """The suite `rt1-sim eval` runs without --config."""
    return resource_path(EVAL_CONFIGS, "default.json")
