"""Package names that load their module on first use (PEP 562), so that a light part of a package does not
pull in the heavy one: `rt1_sim.eval.stats` without the simulator, `rt1_sim.model.presets` without torch."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: name -> the attribute of that name in `modules[name]`, imported
    on first use and then kept in the package, so later lookups skip this."""

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modules[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
