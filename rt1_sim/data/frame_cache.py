"""Decoded frames on disk: every episode of a dataset decoded once into one uint8 `.npy` file per camera at
the network's image size, opened with `np.memmap` by every run, rank and DataLoader worker.

```
<data_path>.frame_cache/frames_<H>x<W>_<view+view>/      (next to the dataset; or under `cache_dir`)
  <view>.npy       (N, H, W, 3) uint8, frame j of episode k at row starts[k] + j
  actions.npy      (N, ACTION_SIZE) float32
  states.npy       (N, STATE_SIZE) float32: target and goal positions (rt1_sim.data.windows.episode_states)
  hands.npy        (N, HAND_SIZE) float32: the hand's pose (rt1_sim.data.windows.episode_hands)
  index.json       key, starts, instructions, file sizes and a CRC-32 per episode and file; written last
frames_<H>x<W>_<view+view>.lock                            (fcntl.flock: one process builds, the others wait)
```
The key hashes the dataset's content as the file system describes it (episode lengths, and the name, size and
mtime of every file of every episode) with the image size and cameras: a cache is reused when its key matches
and rebuilt otherwise. A build streams episode by episode into preallocated memmaps in temporary files, fsyncs
them and renames them into place, `index.json` last, so a reader never sees a half-built cache. Opening checks
the index's own checksum, every file's header and size, and (by default) the CRC-32 of every episode: a
truncated or damaged cache is rebuilt, never used. Frames live in the page cache, shared by every process that
maps them; a process's anonymous memory holds only the small per-frame arrays (actions, tokens).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import os
import shutil
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from envs.spaces import ACTION_SIZE
from rt1_sim.config import FRAME_CACHE_MODES
from rt1_sim.data.episodes import CACHE_SUFFIX, DATASET_INFO_FILE, EPISODE_DIR, RGB_DIR, DatasetError
from rt1_sim.data.keypoints import HAND_SIZE
from rt1_sim.data.sources import content_stats, list_episodes, read_episode
from rt1_sim.data.windows import STATE_SIZE, FrameCache, episode_hands, episode_states, load_frame_cache
from rt1_sim.files import disk_full_as_error
from rt1_sim.outputs import FileLock
from rt1_sim.preprocess import resize_images

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: states.npy; 3: hands.npy
INDEX_FILE = "index.json"
ACTIONS_FILE = "actions.npy"
STATES_FILE = "states.npy"
HANDS_FILE = "hands.npy"
TMP_PREFIX = ".tmp_"


# ---------------------------------------------------------------- frames of chosen episodes
class MappedFrames:
    """The frames of chosen episodes of one camera, read from a cache file through `np.memmap`: row
    `starts[k] + j` is frame j of the k-th chosen episode, as in an in-memory FrameCache array.

    Slices within one episode (what a window reads) are views of the mapping, not copies. Pickling keeps the
    path, not the frames: a DataLoader worker maps the same file again (and shares its pages).
    """

    def __init__(self, path: Path, starts: np.ndarray, sources: np.ndarray) -> None:
        self.path = Path(path)
        self.starts = starts  # (K + 1,) rows of the chosen episodes here
        self.sources = sources  # (K,) row of each chosen episode's first frame in the file
        self._array: np.ndarray | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file first mapped
        self.shape = (int(starts[-1]), *self._frames().shape[1:])  # (n, H, W, 3)
        self.dtype = np.dtype(np.uint8)

    def _frames(self) -> np.ndarray:
        """The whole file's (N, H, W, 3) frames, mapped read-only on first use in this process."""
        if self._array is None:
            array = np.asarray(np.load(self.path, mmap_mode="r"))
            st = os.stat(self.path)
            if self._identity not in (None, (st.st_dev, st.st_ino)):  # a worker mapping it again
                raise DatasetError(f"{self.path}: the frame cache was rebuilt while this run was reading it")
            self._array, self._identity = array, (st.st_dev, st.st_ino)
        return self._array

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            index = slice(int(index) % len(self), int(index) % len(self) + 1)
            return self[index][0]
        if not isinstance(index, slice) or index.step not in (None, 1):
            return np.asarray(self)[index]
        start, stop, _ = index.indices(len(self))
        pieces = []
        while start < stop:  # one piece per episode the slice touches (a window touches one)
            k = int(np.searchsorted(self.starts, start, side="right")) - 1
            end = min(stop, int(self.starts[k + 1]))
            offset = int(self.sources[k]) - int(self.starts[k])
            pieces.append(self._frames()[start + offset : end + offset])
            start = end
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.zeros((0, *self.shape[1:]), np.uint8)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}


@dataclass
class FrameStore:
    """An opened cache: every episode of the dataset; `select` gives the FrameCache of some of them."""

    folder: Path
    views: tuple[str, ...]
    starts: np.ndarray  # (K + 1,) int64 row offsets of all K episodes
    actions: np.ndarray  # (N, ACTION_SIZE) float32
    instructions: list[str]
    states: np.ndarray  # (N, STATE_SIZE) float32
    hands: np.ndarray  # (N, HAND_SIZE) float32

    def select(self, episodes: Sequence[int]) -> FrameCache:
        """The FrameCache of `episodes` (dataset indices, in this order), frames read from the cache files."""
        count = len(self.starts) - 1
        for index in episodes:
            if not 0 <= index < count:
                raise DatasetError(
                    f"{self.folder}: episode {index} does not exist (the dataset holds {count})"
                )
        ids = np.asarray(episodes, np.int64)
        lengths = self.starts[ids + 1] - self.starts[ids]
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = (
            np.concatenate([np.arange(self.starts[i], self.starts[i + 1]) for i in ids]) if len(ids) else []
        )
        return FrameCache(
            views=self.views,
            frames={v: MappedFrames(self.folder / f"{v}.npy", starts, self.starts[ids]) for v in self.views},
            actions=self.actions[np.asarray(rows, np.int64)],
            starts=starts,
            instructions=[self.instructions[i] for i in ids],
            episodes=list(episodes),
            states=self.states[np.asarray(rows, np.int64)],
            hands=self.hands[np.asarray(rows, np.int64)],
        )


# ---------------------------------------------------------------- where, and which content
def cache_folder(
    root: str | Path, views: Sequence[str], image_size: tuple[int, int], cache_dir: str | Path | None = None
) -> Path:
    """Where the cache of this dataset, size and cameras lives: under `cache_dir` when given, else next to the
    dataset (`<data_path>.frame_cache/`), or, when the dataset's folder is read-only, in the user's cache
    folder ($XDG_CACHE_HOME or ~/.cache, `rt1_sim/frame_cache/`). Creates the folder."""
    root = Path(root).resolve()
    name = f"frames_{image_size[0]}x{image_size[1]}_{'+'.join(views)}"
    tag = f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:10]}"  # same-named datasets apart
    if cache_dir is not None:
        candidates = [Path(cache_dir).expanduser().resolve() / tag / name]
    else:
        user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rt1_sim" / "frame_cache"
        candidates = [root.parent / f"{root.name}{CACHE_SUFFIX}" / name, user / tag / name]
    for i, folder in enumerate(candidates):
        if _writable(folder):
            if i:
                log.info(
                    "%s is read-only: the frame cache goes to %s (cache_dir chooses)", root.parent, folder
                )
            return folder
    raise DatasetError(
        f"{candidates[-1]}: cannot write the frame cache there; set cache_dir to a writable folder, or "
        '"frame_cache": "memory"'
    )


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def dataset_key(root: str | Path, views: Sequence[str], image_size: tuple[int, int]) -> tuple[str, list[int]]:
    """A hash of what the cache depends on, and the episode lengths: format version, image size, cameras,
    `dataset_info.json`, and the name, size and mtime of every file of every listed episode."""
    root = Path(root)
    lengths = list_episodes(root, views)
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, list(image_size), list(views), lengths]).encode())
    lerobot = content_stats(root)
    if lerobot is not None:  # a LeRobot dataset's files hold many episodes each: all of them
        digest.update(repr(lerobot).encode())
        return digest.hexdigest(), lengths
    for v in views:
        for index in range(len(lengths)):
            folder = root / v / EPISODE_DIR.format(index)
            for sub in (folder, folder / RGB_DIR):
                digest.update(repr(_file_stats(sub)).encode())
        digest.update(repr(_file_stats(root / v / DATASET_INFO_FILE)).encode())
    return digest.hexdigest(), lengths


def _file_stats(path: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of the files in folder `path` (or of the file `path`); [] when missing."""
    try:
        if path.is_file():
            st = path.stat()
            return [(path.name, st.st_size, st.st_mtime_ns)]
        with os.scandir(path) as entries:
            files = [e for e in entries if e.is_file()]
            return sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in files)
    except OSError:
        return []  # a missing episode: the build's reader names it


# ---------------------------------------------------------------- open (reuse, or build then reuse)
def open_frame_store(
    root: str | Path,
    views: Sequence[str],
    image_size: tuple[int, int],
    cache_dir: str | Path | None = None,
    progress: bool = True,
    verify: bool = True,
) -> FrameStore:
    """The dataset's frame cache at `image_size`: reused when its key matches and it checks out (`verify`:
    every episode's CRC-32 too), built (or rebuilt) otherwise. Concurrent processes take a file lock: one
    builds, the others wait and then reuse. The log says which happened and why."""
    folder = cache_folder(root, views, image_size, cache_dir)
    key, lengths = dataset_key(root, views, image_size)
    with _locked(folder):
        store, reason = _open_valid(folder, tuple(views), key, verify)
        if store is not None:
            log.info("frame cache %s: reused (dataset unchanged)", folder)
            return store
        log.info("frame cache %s: building (%s)", folder, reason)
        _build(folder, Path(root), tuple(views), image_size, lengths, key, progress)
        store, reason = _open_valid(folder, tuple(views), key, verify=False)  # just written and fsynced
        if store is None:
            raise DatasetError(f"{folder}: the frame cache just built does not open ({reason})")
        return store


def open_shared_frame_store(
    root: str | Path,
    views: Sequence[str],
    image_size: tuple[int, int],
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FrameStore:
    """`open_frame_store` for every rank of a torch.distributed job: rank 0 checks or builds the cache while
    the others wait at a barrier, then they open it (header and size checks only). Outside a job: one
    process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return open_frame_store(root, views, image_size, cache_dir, progress)
    # A gloo group with a long timeout: building a large cache may outlast the default group's (NCCL) timeout.
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(days=1))
    if dist.get_rank() == 0:
        try:
            return open_frame_store(root, views, image_size, cache_dir, progress)
        finally:  # a failed build releases the others too: they reach the same error themselves
            dist.barrier(group=group)
    dist.barrier(group=group)
    return open_frame_store(root, views, image_size, cache_dir, progress=False, verify=False)


def frame_loader(
    mode: str,
    root: str | Path,
    views: Sequence[str],
    image_size: tuple[int, int],
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Callable[[Sequence[int]], FrameCache]:
    """episodes -> FrameCache: decoded into memory ("memory"), or read from the disk cache ("memmap"), which
    is opened (or built) here, once for every split."""
    if mode == "memory":
        return functools.partial(load_frame_cache, root, views, image_size=image_size, progress=progress)
    if mode != "memmap":
        raise ValueError(f"frame_cache must be one of {FRAME_CACHE_MODES}, got {mode!r}")
    return open_shared_frame_store(root, views, image_size, cache_dir, progress).select


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on `<folder>.lock` for the block; says so when another process holds it."""
    lock = FileLock(folder.parent / f"{folder.name}.lock", keep=True)
    if not lock.acquire(wait=False):
        holder = lock.holder()
        log.info("frame cache %s: another process (PID %s) holds it (building?); waiting", folder, holder)
        lock.acquire(wait=True)
    with lock:
        yield


def _checksum(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _open_valid(
    folder: Path, views: tuple[str, ...], key: str, verify: bool
) -> tuple[FrameStore | None, str]:
    """The cache in `folder` if it is whole and made for `key`, else (None, why not)."""
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
    except FileNotFoundError:
        return None, "no cache yet"
    except (OSError, ValueError) as e:
        return None, f"{INDEX_FILE} unreadable ({e})"
    if not isinstance(index, dict) or index.pop("checksum", None) != _checksum(index):
        return None, f"{INDEX_FILE} damaged (checksum mismatch)"
    if index["version"] != FORMAT_VERSION:
        return None, f"made by format version {index['version']}, this is {FORMAT_VERSION}"
    if index["key"] != key:
        return None, "the dataset changed since it was built"
    starts = np.asarray(index["starts"], np.int64)
    for name, entry in index["files"].items():
        reason = _check_file(folder / name, entry, starts, verify)
        if reason:
            return None, reason
    actions, states = np.load(folder / ACTIONS_FILE), np.load(folder / STATES_FILE)
    hands = np.load(folder / HANDS_FILE)
    return FrameStore(folder, views, starts, actions, index["instructions"], states, hands), ""


def _check_file(path: Path, entry: dict[str, Any], starts: np.ndarray, verify: bool) -> str:
    """'' if the .npy file has the recorded size, shape and dtype (and, `verify`, CRC-32 per episode)."""
    try:
        size = path.stat().st_size
        if size != entry["bytes"]:
            return f"{path.name}: {size} bytes, expected {entry['bytes']} (truncated?)"
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        return f"{path.name}: unreadable ({e})"
    if list(array.shape) != entry["shape"] or array.dtype != np.dtype(entry["dtype"]):
        return f"{path.name}: {array.dtype}{list(array.shape)}, expected {entry['dtype']}{entry['shape']}"
    if verify:
        for k, crc in enumerate(entry["crc32"]):
            rows = array[starts[k] : starts[k + 1]]
            if zlib.crc32(np.ascontiguousarray(rows)) != crc:
                return f"{path.name}: episode {k} does not match its checksum (damaged)"
    return ""


# ---------------------------------------------------------------- build
def _build(
    folder: Path,
    root: Path,
    views: tuple[str, ...],
    image_size: tuple[int, int],
    lengths: list[int],
    key: str,
    progress: bool,
) -> None:
    """Decode every episode into temporary memmaps episode by episode (never all frames in memory), fsync
    them, then rename them into place with `index.json` last."""
    total = int(sum(lengths))
    shape = (total, *image_size, 3)
    needed = total * int(np.prod(shape[1:])) * len(views)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DatasetError(
            f"{folder}: the frame cache needs {needed / 2**30:.2f} GiB, {free / 2**30:.2f} GiB are free; set "
            'cache_dir to a larger disk, or "frame_cache": "memory"'
        )
    for stale in folder.glob(f"{TMP_PREFIX}*"):  # left by a build that was killed
        stale.unlink()
    names = [f"{v}.npy" for v in views] + [ACTIONS_FILE, STATES_FILE, HANDS_FILE]
    tmp = {name: folder / f"{TMP_PREFIX}{name}" for name in names}
    try:
        with disk_full_as_error(folder):  # the free-space check above cannot see other writers
            files, instructions = _write_frames(root, views, image_size, lengths, tmp, progress)
        index = {
            "version": FORMAT_VERSION,
            "key": key,
            "views": list(views),
            "image_size": list(image_size),
            "starts": np.concatenate([[0], np.cumsum(lengths)]).tolist(),
            "instructions": instructions,
            "files": files,
        }
        index["checksum"] = _checksum(index)
        index_tmp = folder / f"{TMP_PREFIX}{INDEX_FILE}"
        with open(index_tmp, "w") as f:
            json.dump(index, f)
            f.flush()
            os.fsync(f.fileno())
        (folder / INDEX_FILE).unlink(missing_ok=True)  # from here until the last rename: no valid cache
        for name, path in tmp.items():
            os.replace(path, folder / name)
        os.replace(index_tmp, folder / INDEX_FILE)
        _fsync_dir(folder)
    except BaseException:
        for path in folder.glob(f"{TMP_PREFIX}*"):
            path.unlink(missing_ok=True)
        raise
    log.info(
        "frame cache %s: built, %d frames x %d camera(s), %.2f GiB", folder, total, len(views), needed / 2**30
    )


def _write_frames(
    root: Path,
    views: tuple[str, ...],
    image_size: tuple[int, int],
    lengths: list[int],
    tmp: dict[str, Path],
    progress: bool,
) -> tuple[dict[str, Any], list[str]]:
    """Stream every episode into the temporary files; returns their index entries and the instructions."""
    total = int(sum(lengths))
    frames = {
        v: np.lib.format.open_memmap(
            tmp[f"{v}.npy"], mode="w+", dtype=np.uint8, shape=(total, *image_size, 3)
        )
        for v in views
    }
    actions = np.zeros((total, ACTION_SIZE), np.float32)
    states = np.zeros((total, STATE_SIZE), np.float32)
    hands = np.zeros((total, HAND_SIZE), np.float32)
    crcs: dict[str, list[int]] = {name: [] for name in tmp}
    instructions, row = [], 0
    bar = tqdm(
        enumerate(lengths),
        total=len(lengths),
        desc="build frame cache",
        unit="ep",
        disable=not progress,
        mininterval=1.0,
    )
    for index, length in bar:
        episode = read_episode(root, views, index, length)
        for v in views:
            resized = np.ascontiguousarray(resize_images(episode.images[v], image_size))  # (L, H, W, 3)
            frames[v][row : row + length] = resized
            crcs[f"{v}.npy"].append(zlib.crc32(resized))
        actions[row : row + length] = episode.actions
        crcs[ACTIONS_FILE].append(zlib.crc32(actions[row : row + length]))
        states[row : row + length] = episode_states(episode)
        crcs[STATES_FILE].append(zlib.crc32(states[row : row + length]))
        hands[row : row + length] = episode_hands(episode)
        crcs[HANDS_FILE].append(zlib.crc32(hands[row : row + length]))
        instructions.append(episode.instruction)
        row += length
    for v in views:
        frames[v].flush()
    del frames  # unmapped: the files are complete
    np.save(tmp[ACTIONS_FILE], actions)
    np.save(tmp[STATES_FILE], states)
    np.save(tmp[HANDS_FILE], hands)
    return {name: _file_entry(path, crcs[name]) for name, path in tmp.items()}, instructions


def _file_entry(path: Path, crcs: list[int]) -> dict[str, Any]:
    """fsync `path`, and describe it for index.json: bytes, shape, dtype, CRC-32 list."""
    _fsync_file(path)
    array = np.load(path, mmap_mode="r")
    return {
        "bytes": path.stat().st_size,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "crc32": crcs,
    }


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
