"""The decoded-frame cache on disk: the same frames as decoding into memory, built once and reused by a second
process, rank 0 builds while other ranks wait, rebuilt when the dataset changes or a cache file is truncated
or damaged, read-only dataset folders."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as torch_mp

from envs.spaces import CAMERA_NAMES
from rt1_sim.data import frame_cache
from rt1_sim.data.episodes import EPISODE_DIR, RESULTS_FILES, DatasetError
from rt1_sim.data.frame_cache import INDEX_FILE, MappedFrames, cache_folder, open_frame_store
from rt1_sim.data.keypoints import dataset_geometry
from rt1_sim.data.windows import RandomCrop, WindowDataset, load_frame_cache
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.instruction import HashInstructionEncoder

SIZE = (32, 32)  # resized once while building, as training does


@pytest.fixture()
def dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset (tests here change it)."""
    return Path(shutil.copytree(tiny_dataset, tmp_path / "tiny"))


def open_store(root: Path, caplog: pytest.LogCaptureFixture) -> tuple[frame_cache.FrameStore, str]:
    """Open the cache, and the log line that says whether it was reused or built (and why)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=frame_cache.__name__):
        store = open_frame_store(root, CAMERA_NAMES, SIZE, progress=False)
    return store, " ".join(r.getMessage() for r in caplog.records)


def test_cache_gives_the_frames_and_windows_of_the_in_memory_path(dataset: Path) -> None:
    store = open_frame_store(dataset, CAMERA_NAMES, SIZE, progress=False)
    ids = [2, 0, 3]
    mapped, memory = store.select(ids), load_frame_cache(dataset, CAMERA_NAMES, ids, SIZE, progress=False)
    assert mapped.episodes == memory.episodes and mapped.instructions == memory.instructions
    np.testing.assert_array_equal(mapped.starts, memory.starts)
    np.testing.assert_array_equal(mapped.actions, memory.actions)
    np.testing.assert_array_equal(mapped.states, memory.states)
    np.testing.assert_array_equal(mapped.hands, memory.hands)
    for view in CAMERA_NAMES:
        assert mapped.frames[view].shape == memory.frames[view].shape
        np.testing.assert_array_equal(np.asarray(mapped.frames[view]), memory.frames[view])
    common = {
        "time_sequence_length": 6,
        "predicting_next_ts": False,
        "tokenizer": ActionTokenizer(256),
        "instruction_encoder": HashInstructionEncoder(16),
        "augment": RandomCrop(SIZE, 28),
        "seed": 1,
        "keypoints": (dataset_geometry(dataset), 3),
    }
    a, b = WindowDataset(mapped, **common), WindowDataset(memory, **common)
    assert len(a) == len(b)
    for i in range(len(a)):
        for key, value in a[i].items():
            np.testing.assert_array_equal(value, b[i][key])
    with pytest.raises(DatasetError, match="episode 9 does not exist"):
        store.select([9])


def test_mapped_frames_pickle_by_path_and_slices_are_views_of_the_file(dataset: Path) -> None:
    frames = open_frame_store(dataset, CAMERA_NAMES, SIZE, progress=False).select([1, 0]).frames["front"]
    window = frames[2:8]
    assert not window.flags.owndata  # a view of the mapping
    copy = pickle.loads(pickle.dumps(frames))  # what a spawned DataLoader worker receives
    assert len(pickle.dumps(frames)) < 10_000
    np.testing.assert_array_equal(copy[2:8], window)
    np.testing.assert_array_equal(copy[3], window[1])
    os.replace(frames.path, frames.path.with_name("moved.npy"))  # as if a rebuild replaced the file
    shutil.copy(frames.path.with_name("moved.npy"), frames.path)
    with pytest.raises(DatasetError, match="rebuilt while this run was reading it"):
        pickle.loads(pickle.dumps(frames))[0]
    np.testing.assert_array_equal(frames[2:8], window)  # this process keeps the frames it mapped


def test_second_process_reuses_the_cache_the_first_built_and_a_changed_dataset_rebuilds(
    dataset: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes start at once on one dataset: one builds (holding the lock), the other waits and reuses
    the same files; a change to the dataset is noticed and rebuilds."""
    script = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from rt1_sim.data.frame_cache import open_frame_store
        store = open_frame_store({str(dataset)!r}, {CAMERA_NAMES!r}, {SIZE!r}, progress=False)
        print(store.starts[-1])
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    logs = "".join(err for _, err in outputs)
    assert logs.count(": building (no cache yet)") == 1 and logs.count(": reused (dataset unchanged)") == 1
    folder = cache_folder(dataset, CAMERA_NAMES, SIZE)
    inode = (folder / "front.npy").stat().st_ino

    store, message = open_store(dataset, caplog)  # a third run: reused, the same file
    assert "reused" in message and (folder / "front.npy").stat().st_ino == inode
    assert int(outputs[0][0]) == int(outputs[1][0]) == store.starts[-1]

    results = dataset / "front" / EPISODE_DIR.format(1) / RESULTS_FILES[0]
    results.write_text(results.read_text().replace("0", "1", 1))  # one action changed, frames as they were
    store, message = open_store(dataset, caplog)
    assert "building (the dataset changed since it was built)" in message
    assert (folder / "front.npy").stat().st_ino != inode
    np.testing.assert_array_equal(
        store.actions, load_frame_cache(dataset, CAMERA_NAMES, range(4), SIZE, progress=False).actions
    )


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("truncate", "front.npy: .* bytes, expected .* \\(truncated\\?\\)"),
        ("flip", "wrist.npy: episode 3 does not match its checksum"),
        ("index", "index.json damaged"),
        ("header", "front.npy: unreadable"),
    ],
)
def test_truncated_or_damaged_cache_is_rebuilt_never_used(
    dataset: Path, caplog: pytest.LogCaptureFixture, damage: str, reason: str
) -> None:
    good, _ = open_store(dataset, caplog)
    expected = np.asarray(good.select(range(4)).frames["wrist"]).copy()
    folder = cache_folder(dataset, CAMERA_NAMES, SIZE)
    if damage == "truncate":
        with open(folder / "front.npy", "r+b") as f:
            f.truncate(os.path.getsize(folder / "front.npy") - 100)
    elif damage == "flip":
        with open(folder / "wrist.npy", "r+b") as f:
            f.seek(-5, os.SEEK_END)  # the last episode's last frame
            byte = f.read(1)
            f.seek(-5, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "index":
        index = json.loads((folder / INDEX_FILE).read_text())
        index["starts"][1] += 1
        (folder / INDEX_FILE).write_text(json.dumps(index))
    else:
        with open(folder / "front.npy", "r+b") as f:
            f.write(b"garbage!")
    store, message = open_store(dataset, caplog)
    assert "building" in message
    assert re.search(reason, message), message
    np.testing.assert_array_equal(np.asarray(store.select(range(4)).frames["wrist"]), expected)
    assert "reused" in open_store(dataset, caplog)[1]


def test_read_only_dataset_folder_puts_the_cache_in_the_user_cache_or_cache_dir(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    next_to = cache_folder(dataset, CAMERA_NAMES, SIZE)
    assert next_to.parent == dataset.parent / "tiny.frame_cache"
    chosen = cache_folder(dataset, CAMERA_NAMES, SIZE, cache_dir=tmp_path / "mine")
    assert chosen.is_dir() and chosen.parent.parent == tmp_path / "mine"
    writable = frame_cache._writable
    read_only = str(dataset) + frame_cache.CACHE_SUFFIX  # as if the dataset's folder could not be written
    # (chmod would not do: the tests may run as root, whom permissions do not stop)
    monkeypatch.setattr(frame_cache, "_writable", lambda f: not str(f).startswith(read_only) and writable(f))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fallback = cache_folder(dataset, CAMERA_NAMES, SIZE)
    assert (tmp_path / "xdg" / "rt1_sim" / "frame_cache") in fallback.parents
    store = open_frame_store(dataset, CAMERA_NAMES, SIZE, progress=False)
    assert store.folder == fallback and (fallback / INDEX_FILE).is_file()


def test_mapped_frames_index_like_an_array(dataset: Path) -> None:
    frames = open_frame_store(dataset, ("front",), SIZE, progress=False).select([3, 1]).frames["front"]
    assert isinstance(frames, MappedFrames)
    whole = np.asarray(frames)
    np.testing.assert_array_equal(frames[-1], whole[-1])
    np.testing.assert_array_equal(frames[1 : len(frames) - 1], whole[1:-1])  # across the episode boundary
    np.testing.assert_array_equal(frames[::2], whole[::2])


def _open_as_rank(rank: int, root: str, init_file: str, out: str) -> None:
    """One rank of a 2-process gloo job: open the shared cache, write what this rank's log said."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger(frame_cache.__name__).addHandler(handler)
    logging.getLogger(frame_cache.__name__).setLevel(logging.INFO)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        store = frame_cache.open_shared_frame_store(root, CAMERA_NAMES, SIZE, progress=False)
        Path(out, f"rank{rank}.json").write_text(
            json.dumps({"log": records, "frames": int(store.starts[-1])})
        )
    finally:
        dist.destroy_process_group()


def test_under_torch_distributed_rank_0_builds_while_the_other_rank_waits(
    dataset: Path, tmp_path: Path
) -> None:
    torch_mp.spawn(
        _open_as_rank, args=(str(dataset), str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert any("building (no cache yet)" in line for line in ranks[0]["log"])
    assert not any("building" in line for line in ranks[1]["log"]), ranks[1]["log"]
    assert any("reused" in line for line in ranks[1]["log"]) and ranks[0]["frames"] == ranks[1]["frames"]
