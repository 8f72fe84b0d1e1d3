"""Episodes on disk in the IO reproduction's layout (README "Dataset layout"), written atomically, read
strictly.

```
<root>/<view>/dataset_info.json         {"episode_length": [L0, L1, ...]}
<root>/<view>/data_000/rgb/image_001.png  ...  (one per frame)
<root>/<view>/data_000/results.csv        actions, one row per frame   (IO's `result.csv` is read too)
<root>/<view>/data_000/results_raw.csv    joints + object pose + task    (IO's `result_raw.csv` is read too)
<root>/<view>/data_000/episode.json       seed, instruction, success, steps (ours; optional when reading)
```
No torch here: collection and evaluation recording use this module; training reads through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from envs.spaces import (
    ACTION_COLUMNS,
    ACTION_SIZE,
    ACTION_SLICES,
    GOAL_COLUMNS,
    JOINT_COLUMNS,
    OBJECT_POSE_COLUMNS,
    RESULTS_COLUMNS,
    TASK_COLUMN,
)
from rt1_sim.errors import DatasetError
from rt1_sim.files import atomic_write_text, disk_full_as_error

# IO's file and folder names (docs/data.md, "Dataset layout").
DATASET_INFO_FILE = "dataset_info.json"
EPISODE_META_FILE = "episode.json"
RGB_DIR = "rgb"
IMAGE_NAME = "image_{:03d}.png"  # 1-based frame index, as IO writes them
EPISODE_DIR = "data_{:03d}"
# We write the plural names; IO's loader reads the singular ones: the reader accepts both.
RESULTS_FILES: tuple[str, ...] = ("results.csv", "result.csv")
RAW_FILES: tuple[str, ...] = ("results_raw.csv", "result_raw.csv")
TMP_PREFIX = ".tmp_"  # staging folders and temporary files: clean_incomplete removes leftovers
RAW_STATE_SIZE = len(JOINT_COLUMNS) + len(OBJECT_POSE_COLUMNS)
PNG_COMPRESS_LEVEL = 1  # fast to write; PNG stays lossless
# Written by `rt1-sim eval --record` into the datasets it records (collect writes collect_config.json): the
# file says who wrote the folder.
RECORD_CONFIG_FILE = "eval_config.json"
# A multi-task collection is a root of IO's `[robotname]_[taskname]` dataset folders (`Panda_pick`, ...), one
# per task; training takes such a root, or a list of dataset folders, as its data_path.
ROBOT_NAME = "Panda"
# `<dataset><CACHE_SUFFIX>/` holds a dataset's decoded-frame caches (rt1_sim/data/frame_cache.py), next to it.
CACHE_SUFFIX = ".frame_cache"


@contextlib.contextmanager
def _reading(root: Path) -> Iterator[None]:
    """An OSError while reading dataset `root` (a folder or file we may not read, an I/O error) becomes a
    DatasetError naming the file: the dataset is the user's to fix. Only readers use it, never writers."""
    try:
        yield
    except OSError as e:
        raise DatasetError(f"{e.filename or root}: cannot read it ({e.strerror or e})") from None


def task_folder_name(task: str) -> str:
    """IO's dataset folder name for `task`: `Panda_<task>`."""
    return f"{ROBOT_NAME}_{task}"


def task_folders(root: Path) -> list[Path]:
    """The `Panda_*` dataset folders directly under `root`, by name (frame caches beside them excluded)."""
    prefix = task_folder_name("")
    return sorted(
        p
        for p in Path(root).iterdir()
        if p.is_dir() and p.name.startswith(prefix) and not p.name.endswith(CACHE_SUFFIX)
    )


def is_dataset_root(path: Path, views: Sequence[str]) -> bool:
    """A folder that is no dataset itself (no `<first view>/dataset_info.json`) but holds `Panda_*` ones."""
    path = Path(path)
    return path.is_dir() and not (path / views[0] / DATASET_INFO_FILE).exists() and bool(task_folders(path))


def expand_dataset_roots(paths: Sequence[str], views: Sequence[str]) -> list[str]:
    """`paths` with every dataset root (`is_dataset_root`) replaced by its `Panda_*` folders, in name order;
    other paths, missing ones included, are kept as they are (the reader names what is wrong with them)."""
    out: list[str] = []
    for path in paths:
        with _reading(Path(path)):
            root = is_dataset_root(Path(path), views)
        if root:
            out.extend(str(p) for p in task_folders(Path(path)))
        else:
            out.append(path)
    return out


@dataclass
class Episode:
    """One episode in memory: frame i of every view pairs with action i (commanded after seeing it) and raw
    state i."""

    images: dict[str, np.ndarray]  # view -> (L, H, W, 3) uint8
    actions: np.ndarray  # (L, ACTION_SIZE) float32
    raw_states: np.ndarray  # (L, RAW_STATE_SIZE) float64: 9 joints, target xyz + xyzw quaternion
    instruction: str
    meta: dict[str, Any] = field(default_factory=dict)  # seed, success, steps, ... (JSON-serialisable)
    goals: np.ndarray | None = None  # (L, 3) float64: the task's goal position per frame, where it logs one

    def __len__(self) -> int:
        return len(self.actions)


class EpisodeRecorder:
    """A rollout `on_step` callback that keeps every observed frame with its action and raw state."""

    def __init__(self, views: Sequence[str]) -> None:
        self.views = tuple(views)
        self.frames: dict[str, list[np.ndarray]] = {v: [] for v in self.views}
        self.actions: list[np.ndarray] = []
        self.raw_states: list[np.ndarray] = []
        self.goals: list[np.ndarray] = []

    def __call__(self, obs: dict[str, np.ndarray], info: dict[str, Any], action: np.ndarray | None) -> None:
        # the final observation has no action: IO's layout keeps one row per acted-on frame
        if action is None:
            return
        for v in self.views:
            self.frames[v].append(np.array(obs[v], copy=True))
        self.actions.append(np.asarray(action, dtype=np.float32))
        self.raw_states.append(np.asarray(info["raw_state"], dtype=np.float64))
        if "goal_pos" in info:
            self.goals.append(np.asarray(info["goal_pos"], dtype=np.float64))

    def episode(self, instruction: str, meta: dict[str, Any]) -> Episode:
        return Episode(
            images={v: np.stack(f) for v, f in self.frames.items()},
            actions=np.stack(self.actions),
            raw_states=np.stack(self.raw_states),
            instruction=instruction,
            meta=dict(meta),
            goals=np.stack(self.goals) if len(self.goals) == len(self.actions) else None,
        )


# ---------------------------------------------------------------- writing
def write_episode_dir(folder: Path, view: str, episode: Episode, io_names: bool = False) -> None:
    """Write one view of an episode into `folder` (which must not exist yet): frames, both CSVs, metadata.
    `io_names`: IO's singular CSV names (result.csv, result_raw.csv) instead of ours."""
    names = 1 if io_names else 0
    (folder / RGB_DIR).mkdir(parents=True)
    for i, frame in enumerate(episode.images[view]):
        Image.fromarray(frame).save(
            folder / RGB_DIR / IMAGE_NAME.format(i + 1), compress_level=PNG_COMPRESS_LEVEL
        )
    pd.DataFrame(episode.actions.astype(np.float64), columns=list(RESULTS_COLUMNS)).to_csv(
        folder / RESULTS_FILES[names], index=False, float_format="%.9g"
    )
    raw = pd.DataFrame(episode.raw_states, columns=list(JOINT_COLUMNS + OBJECT_POSE_COLUMNS))
    if episode.goals is not None:
        raw[list(GOAL_COLUMNS)] = episode.goals
    raw[TASK_COLUMN] = episode.instruction.replace(" ", "_")
    raw.to_csv(folder / RAW_FILES[names], index=False, float_format="%.9g")
    meta = {"instruction": episode.instruction, "steps": len(episode), **episode.meta}
    (folder / EPISODE_META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))


def staging_dirs(root: Path, views: Sequence[str], tag: str) -> dict[str, Path]:
    """Per-view temporary episode folders (hidden, so readers never see them)."""
    return {v: Path(root) / v / f"{TMP_PREFIX}{tag}" for v in views}


def stage_episode(
    root: Path, views: Sequence[str], tag: str, episode: Episode, io_names: bool = False
) -> dict[str, Path]:
    """Write an episode into hidden per-view staging folders; `commit_episode` makes it visible."""
    dirs = staging_dirs(root, views, tag)
    for v, d in dirs.items():
        if d.exists():
            shutil.rmtree(d)
        with disk_full_as_error(root):  # the staging folder is hidden; the next run's clean-up removes it
            write_episode_dir(d, v, episode, io_names)
    return dirs


def commit_episode(root: Path, views: Sequence[str], staged: dict[str, Path], index: int) -> None:
    """Rename staged folders to `data_{index}`; the first view last, so its presence marks a whole episode."""
    for v in list(views[1:]) + [views[0]]:
        os.replace(staged[v], Path(root) / v / EPISODE_DIR.format(index))


def discard_staged(staged: dict[str, Path]) -> None:
    for d in staged.values():
        shutil.rmtree(d, ignore_errors=True)


def write_dataset_info(root: Path, views: Sequence[str], lengths: Sequence[int]) -> None:
    """`dataset_info.json` in every view folder (IO reads the first), written atomically."""
    text = json.dumps({"episode_length": [int(n) for n in lengths]})
    for v in views:
        atomic_write_text(Path(root) / v / DATASET_INFO_FILE, text, tmp_prefix=TMP_PREFIX)


def write_episode(root: Path, views: Sequence[str], index: int, episode: Episode) -> None:
    """Stage and commit one episode as `data_{index}` (no dataset_info update: see `write_dataset_info`)."""
    commit_episode(root, views, stage_episode(root, views, f"ep{index}", episode), index)


def clean_incomplete(root: Path, views: Sequence[str]) -> list[int]:
    """Remove staging leftovers and episodes missing from a view (a kill mid-commit); return whole indices."""
    root = Path(root)
    per_view: dict[str, set[int]] = {}
    for v in views:
        vdir = root / v
        vdir.mkdir(parents=True, exist_ok=True)
        for p in vdir.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        per_view[v] = {_episode_index(p) for p in vdir.iterdir() if _episode_index(p) is not None}
    whole = set.intersection(*per_view.values()) if per_view else set()
    for v, indices in per_view.items():
        for i in indices - whole:
            shutil.rmtree(root / v / EPISODE_DIR.format(i))
    return sorted(whole)


def _episode_index(path: Path) -> int | None:
    prefix = EPISODE_DIR.split("{")[0]
    if path.is_dir() and path.name.startswith(prefix) and path.name[len(prefix) :].isdigit():
        return int(path.name[len(prefix) :])
    return None


# ---------------------------------------------------------------- reading
def _find(folder: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder}: missing {' or '.join(names)}")


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable CSV ({str(e).strip().splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}")
    _check_numeric(path, df, columns)
    return df


def _check_numeric(path: Path, df: pd.DataFrame, columns: Sequence[str]) -> None:
    numeric = [c for c in columns if c != TASK_COLUMN]
    bad = [c for c in numeric if not pd.api.types.is_numeric_dtype(df[c]) or df[c].isna().any()]
    if bad:
        raise DatasetError(f"{path}: non-numeric or empty values in column(s) {bad}")


def _read_lengths(info_path: Path) -> list[int]:
    try:
        lengths = json.loads(info_path.read_text())["episode_length"]
    except FileNotFoundError:
        raise DatasetError(f"{info_path}: missing (it lists every episode's length)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise DatasetError(f'{info_path}: expected {{"episode_length": [...]}} ({e})') from None
    if not isinstance(lengths, list) or not all(isinstance(n, int) and n > 0 for n in lengths):
        raise DatasetError(f"{info_path}: episode_length must be a list of positive integers")
    return [int(n) for n in lengths]


def list_episodes(root: Path, views: Sequence[str]) -> list[int]:
    """Episode lengths from `dataset_info.json`, which every view must hold with the same list, checked
    against the episode folders (data_000 .. data_{N-1} in every view, no more, no fewer)."""
    root = Path(root)
    with _reading(root):
        return _list_episodes(root, views)


def _list_episodes(root: Path, views: Sequence[str]) -> list[int]:
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    for v in views:
        if not (root / v).is_dir():
            raise DatasetError(f"{root / v}: camera view folder {v!r} does not exist")
    first = root / views[0] / DATASET_INFO_FILE
    lengths = _read_lengths(first)
    for v in views:
        info_path = root / v / DATASET_INFO_FILE
        if v != views[0] and _read_lengths(info_path) != lengths:
            raise DatasetError(f"{info_path}: lists other episode lengths than {first}")
        found = sorted(i for i in map(_episode_index, (root / v).iterdir()) if i is not None)
        if found != list(range(len(lengths))):
            raise DatasetError(
                f"{info_path}: lists {len(lengths)} episodes, but {root / v} holds {len(found)} episode "
                f"folders{_numbering(found, len(lengths))}; the dataset is incomplete or was edited by hand"
            )
    return lengths


def _numbering(found: list[int], listed: int) -> str:
    """Which folder breaks the numbering: ' (missing data_003)' or ' (unlisted data_015)'."""
    extra = [i for i in found if i >= listed]
    missing = sorted(set(range(listed)) - set(found))
    if missing:
        return f" (missing {EPISODE_DIR.format(missing[0])})"
    return f" (unlisted {EPISODE_DIR.format(extra[0])})" if extra else ""


def read_episode(root: Path, views: Sequence[str], index: int, expected_length: int | None = None) -> Episode:
    """Load and validate one episode; any problem is a DatasetError naming the episode folder."""
    root = Path(root)
    with _reading(root):
        return _read_episode(root, views, index, expected_length)


def _read_episode(root: Path, views: Sequence[str], index: int, expected_length: int | None) -> Episode:
    first = root / views[0] / EPISODE_DIR.format(index)
    if not first.is_dir():
        raise DatasetError(f"{first}: episode folder missing")
    for v in views[1:]:  # every view holds both CSVs (IO's layout); the first view's are the ones read
        folder = root / v / EPISODE_DIR.format(index)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: episode folder missing")
        _find(folder, RESULTS_FILES)
        _find(folder, RAW_FILES)
    results = _read_csv(_find(first, RESULTS_FILES), [c for c in RESULTS_COLUMNS if c != "terminate_episode"])
    raw_path = _find(first, RAW_FILES)
    raw = _read_csv(raw_path, JOINT_COLUMNS + OBJECT_POSE_COLUMNS)
    goal_columns = [c for c in GOAL_COLUMNS if c in raw.columns]  # optional, but all three or none
    if goal_columns:
        if len(goal_columns) != len(GOAL_COLUMNS):
            missing = [c for c in GOAL_COLUMNS if c not in goal_columns]
            raise DatasetError(f"{raw_path}: has {goal_columns} but not {missing}")
        _check_numeric(raw_path, raw, GOAL_COLUMNS)
    length = len(results)
    if len(raw) != length:
        raise DatasetError(f"{first}: {RESULTS_FILES[0]} has {length} rows but {RAW_FILES[0]} has {len(raw)}")
    if expected_length is not None and length != expected_length:
        raise DatasetError(f"{first}: {length} rows, but {DATASET_INFO_FILE} says {expected_length}")
    actions = np.zeros((length, ACTION_SIZE), np.float32)
    for name, columns in ACTION_COLUMNS.items():
        if name == "terminate_episode" and columns[0] not in results.columns:
            # IO's datasets carry no terminate label: the last frame of an episode is where it ends.
            actions[-1, ACTION_SLICES[name]] = 1.0
            continue
        actions[:, ACTION_SLICES[name]] = results[list(columns)].to_numpy(np.float32)
    meta_path = first / EPISODE_META_FILE
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    if TASK_COLUMN in raw.columns:
        instruction = str(raw[TASK_COLUMN].iloc[0]).replace("_", " ")
    else:
        instruction = meta.get("instruction", "")
    images = {}
    for v in views:
        folder = root / v / EPISODE_DIR.format(index)
        images[v] = _read_frames(folder, length)
    return Episode(
        images=images,
        actions=actions,
        raw_states=raw[list(JOINT_COLUMNS + OBJECT_POSE_COLUMNS)].to_numpy(np.float64),
        instruction=instruction,
        meta=meta,
        goals=raw[list(GOAL_COLUMNS)].to_numpy(np.float64) if goal_columns else None,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data


def _frame_paths(folder: Path, length: int) -> list[Path]:
    rgb = folder / RGB_DIR
    if not rgb.is_dir():
        raise DatasetError(f"{folder}: missing {RGB_DIR}/ folder")
    paths = sorted(rgb.glob("*.png"))
    if len(paths) != length:
        expected = {IMAGE_NAME.format(i + 1) for i in range(length)}
        missing = sorted(expected - {p.name for p in paths})
        detail = f"missing {missing[:3]}" if missing else "extra frames"
        raise DatasetError(
            f"{folder}: {len(paths)} frames in {RGB_DIR}/ but the CSVs have {length} rows ({detail})"
        )
    return paths


def _read_frames(folder: Path, length: int) -> np.ndarray:
    frames = []
    for p in _frame_paths(folder, length):
        try:
            with Image.open(p) as im:
                frames.append(np.asarray(im.convert("RGB")))
        except OSError as e:
            raise DatasetError(f"{p}: unreadable image ({e})") from None
    if len({f.shape for f in frames}) != 1:
        raise DatasetError(f"{folder}: frames differ in size")
    return np.stack(frames)  # (L, H, W, 3) uint8
