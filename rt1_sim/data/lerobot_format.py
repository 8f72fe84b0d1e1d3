"""LeRobot's dataset format (`LeRobotDataset`, codebase v3.0): written from our datasets, read for training.

```
<root>/meta/info.json                           fps, features (names, dtypes, shapes), totals, paths
<root>/meta/tasks.parquet                       one row per task string (the index) with its task_index
<root>/meta/episodes/chunk-000/file-000.parquet per episode: length, tasks, where its rows and video segments
                                                lie, and its statistics
<root>/meta/stats.json                          statistics of every feature over the dataset
<root>/meta/rt1_sim.json                        ours (LeRobot ignores it): each episode's source and metadata
<root>/data/chunk-000/file-000.parquet          one row per frame: state, action, indices, timestamp
<root>/videos/observation.images.<view>/chunk-000/file-000.mp4    one camera's frames, episode after episode
```
What maps to what: camera `<view>` is `observation.images.<view>`; the 9 joint positions (7 arm + 2
fingers) are `observation.state`; the target object's pose (xyz + xyzw quaternion), and the goal position
where every episode logs one, are `observation.environment_state`; the 8-d action (world_vector,
rotation_delta, gripper_closedness, terminate_episode) is `action`; the instruction is the episode's task
string. Frames are 1/fps apart; in a video file the episodes follow each other, so an episode starts at the
total duration of those before it.

Videos are encoded as LeRobot does by default (AV1 with libsvtav1, yuv420p, a keyframe every 2 frames, CRF
30), with the ffmpeg that imageio-ffmpeg ships; they are lossy, so imported frames differ from the PNGs by a
few levels. Parquet goes through pyarrow (pip install pyarrow, or the `lerobot` extra). Neither direction
needs LeRobot itself.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
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
    ACTION_SIZE,
    GOAL_COLUMNS,
    JOINT_COLUMNS,
    OBJECT_POSE_COLUMNS,
    RESULTS_COLUMNS,
)
from rt1_sim.data.episodes import Episode, list_episodes, read_episode
from rt1_sim.errors import DatasetError, OutputError, UserError
from rt1_sim.files import atomic_write_text, complete_mp4

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
INFO_FILE = "meta/info.json"
STATS_FILE = "meta/stats.json"
TASKS_FILE = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
OUR_META_FILE = "meta/rt1_sim.json"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_MB = 100  # a new data file once the current one holds this much
VIDEO_FILE_MB = 200  # the same for a camera's video file
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# LeRobot's default video encoding.
VIDEO_CODECS = {"libsvtav1": "av1", "libx264": "h264"}
CRF_RANGES = {"libsvtav1": (0, 63), "libx264": (0, 51)}  # what each encoder accepts
DEFAULT_CODEC = "libsvtav1"
DEFAULT_CRF = 30
KEYFRAME_INTERVAL = 2
PIX_FMT = "yuv420p"
DEFAULT_FPS = 10
ROBOT_TYPE = "panda"
STAGING = ".tmp_export"  # inside the output folder while an export writes; moved into place at the end
_WARNED: set[tuple[Path, tuple[str, ...]]] = set()  # foreign action names already warned about
OUTPUT_ENTRIES = ("meta", "data", "videos")


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the submodule is what reads and writes)
    except ImportError:
        raise UserError(
            "LeRobot's format is parquet, which needs pyarrow: pip install pyarrow (or the [lerobot] extra)"
        ) from None
    return pyarrow


def check_video_options(codec: str, crf: int) -> None:
    """A UserError for a codec we do not write or a CRF its encoder refuses (ffmpeg would stop at once)."""
    if codec not in VIDEO_CODECS:
        raise UserError(f"--codec {codec!r}: choose one of {sorted(VIDEO_CODECS)}")
    low, high = CRF_RANGES[codec]
    if not low <= crf <= high:
        raise UserError(f"--crf {crf}: {codec} takes {low}..{high}")


# ---------------------------------------------------------------- statistics
def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """LeRobot's statistics of one feature over `values` (N, ...): min, max, mean, std, count and the
    QUANTILES, per dimension; an image's (N, H, W, 3) uint8 are per channel, on [0, 1], shaped (3, 1, 1)."""
    if image:
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0  # (N*H*W, 3)
    else:
        flat = values.reshape(len(values), -1).astype(np.float64)  # (N, D)
    stats = {
        "min": flat.min(axis=0),
        "max": flat.max(axis=0),
        "mean": flat.mean(axis=0),
        "std": flat.std(axis=0),
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(flat, q, axis=0)
    if image:
        stats = {k: v.reshape(-1, 1, 1) for k, v in stats.items()}
    stats["count"] = np.array([len(values)])
    return stats


def aggregate_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's statistics over several episodes from theirs: exact min, max, mean and std (pooled
    variance), count the sum; quantiles the count-weighted mean of the episodes' (as LeRobot aggregates
    them)."""
    counts = np.array([float(p["count"][0]) for p in parts])
    weights = counts / counts.sum()
    shape = (-1,) + (1,) * (parts[0]["mean"].ndim - 1)
    w = weights.reshape(shape)
    mean = sum(wi * p["mean"] for wi, p in zip(w, parts))
    var = sum(wi * (p["std"] ** 2 + (p["mean"] - mean) ** 2) for wi, p in zip(w, parts))
    out = {
        "min": np.min([p["min"] for p in parts], axis=0),
        "max": np.max([p["max"] for p in parts], axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(counts.sum())]),
    }
    for q in QUANTILES:
        key = f"q{round(q * 100):02d}"
        out[key] = sum(wi * p[key] for wi, p in zip(w, parts))
    return out


def _jsonable(stats: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


# ---------------------------------------------------------------- writing
@dataclass
class _VideoFile:
    """One camera's open mp4: an ffmpeg process fed RGB frames through imageio-ffmpeg."""

    path: Path
    writer: Any
    frames: int = 0

    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0


@dataclass
class _Files:
    """Where the next rows or frames go: chunk and file index of the data and of each camera's video."""

    data: tuple[int, int] = (0, 0)
    videos: dict[str, tuple[int, int]] = field(default_factory=dict)


def _next_file(index: tuple[int, int]) -> tuple[int, int]:
    chunk, file = index
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


class LeRobotWriter:
    """Writes episodes one by one into `root` (a new folder) in LeRobot's v3.0 layout; `close()` writes the
    metadata. Views are our camera names; every episode must hold them all, at one image size."""

    def __init__(
        self,
        root: Path,
        views: Sequence[str],
        fps: int = DEFAULT_FPS,
        codec: str = DEFAULT_CODEC,
        crf: int = DEFAULT_CRF,
        with_goal: bool = True,
    ) -> None:
        self.pa = _pyarrow()
        check_video_options(codec, crf)
        self.root = Path(root)
        self.views = tuple(views)
        self.fps, self.codec, self.crf, self.with_goal = int(fps), codec, int(crf), with_goal
        self.files = _Files(videos={v: (0, 0) for v in self.views})
        self.videos: dict[str, _VideoFile] = {}
        self.rows: list[dict[str, np.ndarray]] = []  # buffered columns of the current data file, per episode
        self.row_bytes = 0
        self.episodes: list[dict[str, Any]] = []
        self.tasks: dict[str, int] = {}
        self.ours: list[dict[str, Any]] = []
        self.frames = 0
        self.image_shape: tuple[int, int, int] | None = None
        self.video_seconds: dict[str, float] = {v: 0.0 for v in self.views}  # of the current file
        self.stats_parts: dict[str, list[dict[str, np.ndarray]]] = {}

    # -- features
    def features(self) -> dict[str, dict[str, Any]]:
        h, w, c = self.image_shape or (0, 0, 3)
        feats: dict[str, dict[str, Any]] = {}
        for v in self.views:
            feats[IMAGE_PREFIX + v] = {
                "dtype": "video",
                "shape": [h, w, c],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": h,
                    "video.width": w,
                    "video.codec": VIDEO_CODECS[self.codec],
                    "video.pix_fmt": PIX_FMT,
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": c,
                    "has_audio": False,
                },
            }
        env_names = list(OBJECT_POSE_COLUMNS) + (list(GOAL_COLUMNS) if self.with_goal else [])
        feats[STATE_KEY] = {"dtype": "float32", "shape": [len(JOINT_COLUMNS)], "names": list(JOINT_COLUMNS)}
        feats[ENV_STATE_KEY] = {"dtype": "float32", "shape": [len(env_names)], "names": env_names}
        feats[ACTION_KEY] = {"dtype": "float32", "shape": [ACTION_SIZE], "names": list(RESULTS_COLUMNS)}
        feats["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for name in INDEX_FEATURES[1:]:
            feats[name] = {"dtype": "int64", "shape": [1], "names": None}
        return feats

    # -- episodes
    def add(self, episode: Episode, source: dict[str, Any]) -> None:
        """Append one episode (all its frames, both cameras); `source` says where it came from."""
        length = len(episode)
        shapes = {episode.images[v].shape[1:] for v in self.views}
        if len(shapes) != 1 or (self.image_shape is not None and shapes != {self.image_shape}):
            raise DatasetError(
                f"{source.get('dataset')}: episode {source.get('index')} has frames of {sorted(shapes)}, "
                f"the export so far {self.image_shape}: one image size per LeRobot dataset"
            )
        if self.image_shape is None:
            self.image_shape = shapes.pop()
            if self.image_shape[0] % 2 or self.image_shape[1] % 2:
                raise DatasetError(
                    f"frames are {self.image_shape[0]}x{self.image_shape[1]}: {PIX_FMT} video needs even "
                    "sizes"
                )
        index = len(self.episodes)
        task = episode.instruction
        task_index = self.tasks.setdefault(task, len(self.tasks))
        if self.with_goal and episode.goals is None:
            raise DatasetError(
                f"{source.get('dataset')}: episode {source.get('index')} logs no goal position"
            )
        env_state = episode.raw_states[:, len(JOINT_COLUMNS) :]
        if self.with_goal:
            env_state = np.concatenate([env_state, episode.goals], axis=1)
        columns = {
            STATE_KEY: episode.raw_states[:, : len(JOINT_COLUMNS)].astype(np.float32),
            ENV_STATE_KEY: env_state.astype(np.float32),
            ACTION_KEY: episode.actions.astype(np.float32),
            "timestamp": (np.arange(length) / self.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, index, np.int64),
            "index": np.arange(self.frames, self.frames + length, dtype=np.int64),
            "task_index": np.full(length, task_index, np.int64),
        }
        stats = {k: feature_stats(v) for k, v in columns.items()}
        row: dict[str, Any] = {
            "episode_index": index,
            "tasks": [task],
            "length": length,
            "data/chunk_index": self.files.data[0],
            "data/file_index": self.files.data[1],
            "dataset_from_index": self.frames,
            "dataset_to_index": self.frames + length,
        }
        for v in self.views:
            key = IMAGE_PREFIX + v
            start = self._write_frames(v, episode.images[v])
            chunk, file = self.files.videos[v]
            row.update(
                {
                    f"videos/{key}/chunk_index": chunk,
                    f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": start,
                    f"videos/{key}/to_timestamp": start + length / self.fps,
                }
            )
            stats[key] = feature_stats(episode.images[v], image=True)
        for key, s in stats.items():
            self.stats_parts.setdefault(key, []).append(s)
            row.update({f"stats/{key}/{name}": np.asarray(value).tolist() for name, value in s.items()})
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        self.episodes.append(row)
        self.ours.append({"episode_index": index, **source, **episode.meta})
        self.rows.append(columns)
        self.row_bytes += sum(c.nbytes for c in columns.values())
        self.frames += length
        if self.row_bytes >= DATA_FILE_MB * 2**20:
            self._flush_rows()
            self.files.data = _next_file(self.files.data)
        for v in self.views:
            if self.videos[v].size_mb() >= VIDEO_FILE_MB:
                self._close_video(v)
                self.files.videos[v] = _next_file(self.files.videos[v])

    def _write_frames(self, view: str, frames: np.ndarray) -> float:
        """Feed an episode's frames to the camera's current video; return the time of its first frame."""
        if view not in self.videos:
            import imageio_ffmpeg

            chunk, file = self.files.videos[view]
            path = self.root / VIDEO_PATH.format(
                video_key=IMAGE_PREFIX + view, chunk_index=chunk, file_index=file
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 otherwise prints its whole configuration
            writer = imageio_ffmpeg.write_frames(
                str(path),
                (frames.shape[2], frames.shape[1]),
                fps=self.fps,
                codec=self.codec,
                pix_fmt_out=PIX_FMT,
                quality=None,
                macro_block_size=1,
                ffmpeg_log_level="error",
                output_params=[
                    "-g",
                    str(KEYFRAME_INTERVAL),
                    "-crf",
                    str(self.crf),
                    "-movflags",
                    "+faststart",
                ],
            )
            writer.send(None)
            self.videos[view] = _VideoFile(path, writer)
            self.video_seconds[view] = 0.0
        video = self.videos[view]
        start = video.frames / self.fps
        try:
            for frame in frames:
                video.writer.send(np.ascontiguousarray(frame))
        except OSError as e:  # ffmpeg stopped reading: it failed (its own message is above)
            raise OutputError(f"{video.path}: ffmpeg stopped encoding ({e.strerror or e})") from None
        video.frames += len(frames)
        return start

    def _close_video(self, view: str) -> None:
        """Finish a camera's video; imageio-ffmpeg does not check how ffmpeg ended, so the file is."""
        video = self.videos.pop(view)
        video.writer.close()
        if not video.path.is_file() or not complete_mp4(video.path):
            raise OutputError(f"{video.path}: ffmpeg left no complete video (its messages are above)")

    def _flush_rows(self) -> None:
        if not self.rows:
            return
        pa = self.pa
        arrays, fields = [], []
        hf_features: dict[str, Any] = {}
        for key in (STATE_KEY, ENV_STATE_KEY, ACTION_KEY, *INDEX_FEATURES):
            values = np.concatenate([r[key] for r in self.rows])
            if values.ndim == 2:
                array = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
                hf_features[key] = {
                    "feature": {"dtype": str(values.dtype), "_type": "Value"},
                    "length": int(values.shape[1]),
                    "_type": "List",
                }
            else:
                array = pa.array(values)
                hf_features[key] = {"dtype": str(values.dtype), "_type": "Value"}
            arrays.append(array)
            fields.append(pa.field(key, array.type))
        metadata = {"huggingface": json.dumps({"info": {"features": hf_features}})}
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))
        chunk, file = self.files.data
        path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        import pyarrow.parquet as pq

        pq.write_table(table, path)
        self.rows, self.row_bytes = [], 0

    def close(self) -> dict[str, Any]:
        """Finish the videos and the last data file; write tasks, episodes, stats and info; return info."""
        if not self.episodes:
            raise DatasetError("no episode to export")
        self._flush_rows()
        for v in list(self.videos):
            self._close_video(v)
        import pyarrow.parquet as pq

        pa = self.pa
        tasks = pd.DataFrame({"task_index": list(self.tasks.values())}, index=list(self.tasks))
        (self.root / TASKS_FILE).parent.mkdir(parents=True, exist_ok=True)
        tasks.to_parquet(self.root / TASKS_FILE, engine="pyarrow")
        episodes_path = (
            self.root / EPISODES_DIR / (CHUNK_FILE.format(chunk_index=0, file_index=0) + ".parquet")
        )
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), episodes_path)
        stats = {key: _jsonable(aggregate_stats(parts)) for key, parts in self.stats_parts.items()}
        atomic_write_text(self.root / STATS_FILE, json.dumps(stats, indent=4))
        atomic_write_text(
            self.root / OUR_META_FILE, json.dumps({"format": 1, "episodes": self.ours}, indent=1, default=str)
        )
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": ROBOT_TYPE,
            "total_episodes": len(self.episodes),
            "total_frames": self.frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": VIDEO_FILE_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": self.features(),
        }
        atomic_write_text(self.root / INFO_FILE, json.dumps(info, indent=4))
        return info

    def abort(self) -> None:
        for v in list(self.videos):
            with contextlib.suppress(Exception):  # a failing ffmpeg must not hide the first error
                self._close_video(v)


def export_lerobot(
    folders: Sequence[Path],
    views: Sequence[str],
    out: Path,
    fps: int = DEFAULT_FPS,
    codec: str = DEFAULT_CODEC,
    crf: int = DEFAULT_CRF,
    progress: bool = True,
) -> dict[str, Any]:
    """Every episode of our dataset `folders` (in order) into one LeRobot dataset at `out`, which must be new
    or empty but for an earlier export's files (the caller checks and locks it). Written into
    `out/.tmp_export` and moved into place at the end, `meta/` last: a killed export leaves no folder that
    LeRobot would open."""
    from tqdm import tqdm

    lengths = {folder: list_episodes(folder, views) for folder in folders}  # every folder checked first
    goals = {folder.name: _has_goals(folder, views) for folder in folders}
    with_goal = all(goals.values())
    if any(goals.values()) and not with_goal:
        log.warning(
            "goal positions left out of observation.environment_state: %s log none",
            ", ".join(name for name, has in goals.items() if not has),
        )
    staging = out / STAGING
    writer = LeRobotWriter(staging, views, fps, codec, crf, with_goal)  # checks its options: nothing written
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    total = sum(len(n) for n in lengths.values())
    bar = tqdm(total=total, desc="export", unit="ep", disable=not progress, mininterval=1.0)
    try:
        for folder, folder_lengths in lengths.items():
            for index, length in enumerate(folder_lengths):
                episode = read_episode(folder, views, index, length)
                writer.add(episode, {"dataset": folder.name, "index": index})
                bar.update(1)
        info = writer.close()
    except BaseException:
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    for name in OUTPUT_ENTRIES:
        target = out / name
        if target.exists():
            shutil.rmtree(target)
    for name in ("data", "videos", "meta"):  # meta (info.json) last: it marks a whole dataset
        os.replace(staging / name, out / name)
    staging.rmdir()
    return info


def _has_goals(folder: Path, views: Sequence[str]) -> bool:
    """Whether the folder's episodes log a goal position (read from its first episode)."""
    return read_episode(folder, views, 0).goals is not None


# ---------------------------------------------------------------- reading
@dataclass
class LeRobotSource:
    """A LeRobot v3.0 dataset on disk, read episode by episode into our `Episode`s."""

    root: Path
    info: dict[str, Any]
    episodes: pd.DataFrame  # one row per episode, by episode_index
    tasks: dict[int, str]
    ours: list[dict[str, Any]]

    @property
    def lengths(self) -> list[int]:
        return [int(n) for n in self.episodes["length"]]

    @property
    def features(self) -> dict[str, Any]:
        return self.info["features"]

    def camera_key(self, view: str) -> str:
        """The feature holding camera `view` (`observation.images.<view>`, or `view` itself when it is a
        feature's full name); a DatasetError naming the cameras there are otherwise."""
        for key in (IMAGE_PREFIX + view, view):
            if self.features.get(key, {}).get("dtype") in ("video", "image"):
                return key
        cameras = [k for k, f in self.features.items() if f.get("dtype") in ("video", "image")]
        raise DatasetError(
            f"{self.root / INFO_FILE}: no camera {view!r} (feature {IMAGE_PREFIX + view}); its cameras are "
            f"{cameras or 'none'}: set cam_view to two of them"
        )

    def check(self, views: Sequence[str]) -> None:
        """What training needs: the cameras `views` and an 8-d action."""
        for v in views:
            self.camera_key(v)
        action = self.features.get(ACTION_KEY)
        shape = list(action.get("shape", [])) if action else None
        if shape != [ACTION_SIZE]:
            have = "no action feature" if action is None else f"action of shape {shape}"
            raise DatasetError(
                f"{self.root / INFO_FILE}: {have}; rt1-sim trains an {ACTION_SIZE}-d action "
                f"({', '.join(RESULTS_COLUMNS)})"
            )
        names = list(action.get("names") or [])
        if names != list(RESULTS_COLUMNS) and (self.root, tuple(names)) not in _WARNED:
            _WARNED.add((self.root, tuple(names)))
            log.warning(
                "%s: action is named %s, not %s: rt1-sim reads its 8 values in that order "
                "(world_vector, rotation_delta, gripper_closedness, terminate_episode)",
                self.root / INFO_FILE,
                names or "(no names)",
                list(RESULTS_COLUMNS),
            )

    def read(self, views: Sequence[str], index: int) -> Episode:
        """Episode `index` with the cameras `views`."""
        self.check(views)
        if not 0 <= index < len(self.episodes):
            raise DatasetError(f"{self.root}: episode {index} does not exist (it holds {len(self.episodes)})")
        ep = self.episodes.iloc[index]
        path = self.root / self.info.get("data_path", DATA_PATH).format(
            chunk_index=int(ep["data/chunk_index"]), file_index=int(ep["data/file_index"])
        )
        rows, row_index = _data_rows(path)
        start, stop = int(ep["dataset_from_index"]), int(ep["dataset_to_index"])
        part = rows.iloc[np.searchsorted(row_index, start) : np.searchsorted(row_index, stop)]
        length = int(ep["length"])
        if len(part) != length:
            raise DatasetError(
                f"{self.root}: episode {index} has {len(part)} data rows, its metadata says {length}"
            )
        actions = np.stack(part[ACTION_KEY].to_numpy()).astype(np.float32)
        joints = self._vector(part, STATE_KEY, JOINT_COLUMNS, length)
        env_names = list(self.features.get(ENV_STATE_KEY, {}).get("names") or [])
        pose = self._vector(part, ENV_STATE_KEY, OBJECT_POSE_COLUMNS, length)
        goals = None
        if all(c in env_names for c in GOAL_COLUMNS):
            goals = self._vector(part, ENV_STATE_KEY, GOAL_COLUMNS, length).astype(np.float64)
        images = {}
        for v in views:
            key = self.camera_key(v)
            if self.features[key]["dtype"] == "video":
                images[v] = self._video_frames(key, ep, length)
            else:
                images[v] = np.stack([_decode_image(cell, self.root, key) for cell in part[key]])
        task_index = int(part["task_index"].iloc[0])
        meta = dict(self.ours[index]) if index < len(self.ours) else {}
        return Episode(
            images=images,
            actions=actions,
            raw_states=np.concatenate([joints, pose], axis=1).astype(np.float64),
            instruction=self.tasks.get(task_index, ""),
            meta=meta,
            goals=goals,
        )

    def _vector(self, part: pd.DataFrame, key: str, names: Sequence[str], length: int) -> np.ndarray:
        """The columns `names` of vector feature `key` (matched by the feature's names), NaN where the
        dataset has none of them (a foreign dataset's state means something else: it is not guessed)."""
        out = np.full((length, len(names)), np.nan, np.float32)
        have = list(self.features.get(key, {}).get("names") or [])
        if key not in part.columns or not have:
            return out
        values = np.stack(part[key].to_numpy()).astype(np.float32).reshape(length, -1)
        for j, name in enumerate(names):
            if name in have:
                out[:, j] = values[:, have.index(name)]
        return out

    def _video_frames(self, key: str, ep: pd.Series, length: int) -> np.ndarray:
        chunk, file = int(ep[f"videos/{key}/chunk_index"]), int(ep[f"videos/{key}/file_index"])
        path = self.root / self.info.get("video_path", VIDEO_PATH).format(
            video_key=key, chunk_index=chunk, file_index=file
        )
        if not path.is_file():
            raise DatasetError(f"{path}: video missing (episode {int(ep['episode_index'])})")
        fps = float(self.info["fps"])
        first = int(round(float(ep[f"videos/{key}/from_timestamp"]) * fps))
        h, w = self.features[key]["shape"][:2]
        names = self.features[key].get("names") or []
        if names[:1] == ["channels"]:
            h, w = self.features[key]["shape"][1:3]
        return _decoder(path, fps, (int(h), int(w))).frames(first, length)


def _decode_image(cell: Any, root: Path, key: str) -> np.ndarray:
    """An image feature's cell: {"bytes": PNG/JPEG bytes, "path": ...}."""
    import io

    data = cell.get("bytes") if isinstance(cell, dict) else None
    if data is None and isinstance(cell, dict) and cell.get("path"):
        data = (root / cell["path"]).read_bytes()
    if data is None:
        raise DatasetError(f"{root}: feature {key} holds an image cell without bytes or path")
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class _Decoder:
    """Frames of one video file, decoded in order by one ffmpeg process: the next episode of the same file
    continues where the last one stopped; another one starts a new process just before its first frame."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path, self.fps, self.size = path, fps, size
        self.gen: Iterator[bytes] | None = None
        self.position = -1

    def _open(self, first: int) -> None:
        import imageio_ffmpeg

        if self.gen is not None:
            self.gen.close()
        # Half a frame before the first: ffmpeg's accurate seek then outputs exactly frames >= `first`.
        start = max(0.0, (first - 0.5) / self.fps)
        self.gen = imageio_ffmpeg.read_frames(
            str(self.path), pix_fmt="rgb24", input_params=["-ss", f"{start:.6f}"] if first else None
        )
        meta = next(self.gen)
        w, h = meta["size"]
        if (h, w) != self.size:
            raise DatasetError(
                f"{self.path}: frames are {h}x{w}, info.json says {self.size[0]}x{self.size[1]}"
            )
        self.position = first

    def frames(self, first: int, count: int) -> np.ndarray:
        if self.gen is None or first != self.position:
            self._open(first)
        h, w = self.size
        out = np.empty((count, h, w, 3), np.uint8)
        assert self.gen is not None
        for i in range(count):
            try:
                out[i] = np.frombuffer(next(self.gen), np.uint8).reshape(h, w, 3)
            except StopIteration:
                raise DatasetError(
                    f"{self.path}: ends at frame {self.position + i}, an episode needs {first + count}"
                ) from None
        self.position = first + count
        return out


def _decoder(path: Path, fps: float, size: tuple[int, int]) -> _Decoder:
    """The decoder of one video file, kept while the file is unchanged (a re-export gets a new one)."""
    st = path.stat()
    return _cached_decoder(path, st.st_mtime_ns, st.st_size, st.st_ino, fps, size)


@functools.lru_cache(maxsize=8)
def _cached_decoder(
    path: Path, mtime_ns: int, size_bytes: int, inode: int, fps: float, size: tuple[int, int]
) -> _Decoder:
    return _Decoder(path, fps, size)


def _data_rows(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One data parquet file's rows in `index` order, and that column (cached: consecutive episodes share
    the file)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"{path}: data file missing") from None
    return _read_rows(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _read_rows(path: Path, mtime_ns: int, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    _pyarrow()
    rows = pd.read_parquet(path)
    missing = [c for c in (ACTION_KEY, "index", "frame_index", "task_index") if c not in rows.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}")
    rows = rows.sort_values("index", kind="stable").reset_index(drop=True)
    return rows, rows["index"].to_numpy()


def open_source(root: str | Path) -> LeRobotSource:
    """The LeRobot dataset at `root` (cached per folder and info.json version); a DatasetError naming the file
    for what is missing or of another format version."""
    root = Path(root).resolve()
    stat = (root / INFO_FILE).stat()
    return _open_source(root, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)


@functools.lru_cache(maxsize=16)
def _open_source(root: Path, mtime_ns: int, ctime_ns: int, size: int, inode: int) -> LeRobotSource:
    _pyarrow()
    info_path = root / INFO_FILE
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{info_path}: not valid JSON ({e})") from None
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetError(
            f"{info_path}: LeRobot format {version}; rt1-sim reads {CODEBASE_VERSION} (lerobot's "
            "convert_dataset_v21_to_v30 converts older datasets)"
        )
    for key in ("fps", "features"):
        if key not in info:
            raise DatasetError(f"{info_path}: missing {key!r}")
    files = sorted((root / EPISODES_DIR).glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root / EPISODES_DIR}: no episode metadata (chunk-*/file-*.parquet)")
    episodes = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    episodes = episodes.sort_values("episode_index").reset_index(drop=True)
    if episodes["episode_index"].tolist() != list(range(len(episodes))):
        raise DatasetError(f"{root / EPISODES_DIR}: episode indices are not 0..{len(episodes) - 1}")
    tasks_path = root / TASKS_FILE
    if not tasks_path.is_file():
        raise DatasetError(f"{tasks_path}: missing (the task strings)")
    table = pd.read_parquet(tasks_path)
    tasks = {int(i): str(t) for t, i in zip(table.index, table["task_index"])}
    ours_path = root / OUR_META_FILE
    ours = json.loads(ours_path.read_text()).get("episodes", []) if ours_path.is_file() else []
    return LeRobotSource(root, info, episodes, tasks, ours)


def file_stats(root: str | Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file of the dataset: what a frame cache's key hashes."""
    root = Path(root)
    out = []
    for sub in ("meta", "data", "videos", "images"):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file():
                st = path.stat()
                out.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return out
