"""The one config loader: strict JSON -> frozen dataclass for every config of rt1-sim (TrainConfig,
EvalConfig, CollectConfig, BenchmarkConfig, NetworkConfig). Every key must be a field and every value must fit
its annotation (nested dataclasses recurse), errors name the dotted key and the file; `--set key.path=value`
overrides apply in order, then a command's shorthand options (`shorthand_overrides`) as overrides of the keys
they stand for.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from rt1_sim.errors import ConfigError
from rt1_sim.resources import find_config

C = TypeVar("C")


@dataclass(frozen=True)
class FieldsOf:
    """Annotation marker, `Annotated[dict[str, Any], FieldsOf(SomeConfig)]`: a dict of overrides of some of
    `SomeConfig`'s fields, each key and value checked by the loader as that field would be."""

    config: type


def config_from_dict(cls: type[C], data: Any, source: str, prefix: str = "") -> C:
    """Build dataclass `cls` from plain JSON data: every key must be a field (nested dataclasses recurse) and
    every value must fit the field's annotation; missing keys keep their defaults. Errors name the dotted key
    and `source` (the file)."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a JSON object, got {data!r}")
    values = _check_fields(cls, data, source, prefix)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:  # the dataclass's own __post_init__ validation
        raise ConfigError(f"{source}: {e}") from None


def _check_fields(cls: type, data: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    """`data` with each value checked against (and converted to) its field's annotation in `cls`."""
    where = prefix.rstrip(".") or "the top level"
    hints = get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{source}: unknown key {prefix + key!r}; valid keys in {where}: {names}")
        values[key] = _check_value(value, hints[key], prefix + key, source)
    return values


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check_value(value: Any, hint: Any, key: str, source: str) -> Any:
    """`value` converted to the annotated type (JSON lists -> tuples, ints -> floats), or a ConfigError."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        fields_of = next((m for m in hint.__metadata__ if isinstance(m, FieldsOf)), None)
        if fields_of is None:
            return _check_value(value, args[0], key, source)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: key {key!r} must be a JSON object, got {value!r}")
        return _check_fields(fields_of.config, value, source, key + ".")
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, source, key + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_value(value, option, key, source)
            except ConfigError:
                continue
    elif (
        (hint is bool and isinstance(value, bool))
        or (hint is int and isinstance(value, int) and not isinstance(value, bool))
        or (hint is str and isinstance(value, str))
    ):
        return value
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # JSON has no NaN or Infinity, but Python's parser accepts them
            raise ConfigError(f"{source}: key {key!r} must be a finite number, got {value!r}")
        return float(value)
    elif origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if len(value) == len(args):
            items = enumerate(zip(value, args))
            return tuple(_check_value(v, a, f"{key}[{i}]", source) for i, (v, a) in items)
    elif (hint is dict or origin is dict) and isinstance(value, Mapping):  # JSON keys are strings
        item = args[1] if args else Any
        return {k: _check_value(v, item, f"{key}.{k}", source) for k, v in value.items()}
    raise ConfigError(f"{source}: key {key!r} must be {_type_name(hint)}, got {value!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value), the value read as JSON if it parses, else kept as a string
    (`policy.name=random`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def add_override_argument(parser: Any, example: str) -> None:
    """The `--set KEY=VALUE` option (repeatable, stored as `args.overrides`) for `load_config`."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key, value as JSON (e.g. {example})",
    )


def _set_dotted(data: dict[str, Any], key: str, value: Any, text: str) -> dict[str, Any]:
    """A copy of `data` with the dotted `key` set; intermediate objects are created if missing."""
    out = copy.deepcopy(data)
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text!r}: {'.'.join(parts[: i + 1])!r} is not an object")
    node[parts[-1]] = value
    return out


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: Sequence[str | tuple[str, str]] = ()
) -> C:
    """Read `cls` from a JSON file (None: the defaults; `eval_configs/X.json` and `train_configs/X.json`
    fall back to the shipped files), then apply `--set key.path=value` overrides in order (an override given
    as (label, "key=value"), from `shorthand_overrides`, is named by its label in errors). Unknown keys and
    wrong types raise ConfigError naming the key and the file or override."""
    data: dict[str, Any] = {}
    source = "the defaults"
    if path is not None:
        source = str(path)
        try:
            data = json.loads(find_config(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such config file") from None
        except IsADirectoryError:
            raise ConfigError(f"{source}: is a folder; give a config file (JSON)") from None
        except OSError as e:  # unreadable (permissions, I/O error): the user's file, not a bug
            raise ConfigError(f"{source}: cannot read the config file ({e.strerror or e})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{source}: not valid JSON ({e})") from None
    config = config_from_dict(cls, data, source)
    for override in overrides:
        label, text = override if isinstance(override, tuple) else (f"--set {override}", override)
        key, value = parse_override(text)
        data = _set_dotted(data, key, value, text)
        config = config_from_dict(cls, data, f"{label} (over {source})")
    return config


@dataclass(frozen=True)
class Shorthand:
    """A command-line option that stands for one config key: `--episodes 5` is `--set episodes=5`."""

    dest: str  # the argparse destination (`args.<dest>`); None or False: not given
    key: str  # the dotted config key it sets


def shorthand_overrides(args: Any, shorthands: Sequence[Shorthand]) -> list[tuple[str, str]]:
    """The shorthand options given on the command line as (label, "key=value") overrides for `load_config`,
    in `shorthands`' order: applied after `--set`, and an error names the option (`--seed-start -1`)."""
    overrides = []
    for each in shorthands:
        value = getattr(args, each.dest)
        if value is None or value is False:
            continue
        option = "--" + each.dest.replace("_", "-")
        shown = (
            option
            if value is True
            else f"{option} {' '.join(map(str, value)) if isinstance(value, list) else value}"
        )
        overrides.append((shown, f"{each.key}={json.dumps(value)}"))
    return overrides


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of a config dataclass (tuples become lists); inverse of `config_from_dict`."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
