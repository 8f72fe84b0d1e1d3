"""Training windows: IO's seeded split, right-aligned padded windows, next-step targets without wrap-around,
seeded training-only augmentation, and a frame cache that equals what the reader decodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.spaces import ACTION_SIZE, CAMERA_NAMES
from rt1_sim.data.episodes import (
    EPISODE_DIR,
    IMAGE_NAME,
    RGB_DIR,
    DatasetError,
    expand_dataset_roots,
    list_episodes,
    read_episode,
)
from rt1_sim.data.keypoints import crop_pixels, dataset_geometry
from rt1_sim.data.windows import (
    FrameCache,
    RandomCrop,
    WindowDataset,
    collate_windows,
    concat_windows,
    load_frame_cache,
    split_episodes,
)
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.instruction import HashInstructionEncoder
from rt1_sim.preprocess import crop_and_resize

T = 6
SIZE = (96, 96)  # the tiny dataset's frames (the env's default)


@pytest.fixture(scope="module")
def cache(tiny_dataset: Path) -> FrameCache:
    return load_frame_cache(tiny_dataset, CAMERA_NAMES, [2, 0], SIZE, progress=False)


def windows(cache: FrameCache, next_ts: bool = False, augment: RandomCrop | None = None) -> WindowDataset:
    return WindowDataset(
        cache, T, next_ts, ActionTokenizer(256), HashInstructionEncoder(16), augment=augment, seed=3407
    )


def test_split_is_ios_seeded_permutation() -> None:
    train, val = split_episodes(10, 6, 3, seed=3407)
    order = np.random.default_rng(3407).permutation(10).tolist()
    assert (train, val) == (order[:6], order[6:9])
    assert split_episodes(10, None, 3, seed=3407)[0] == order[:7]  # None: all but the validation episodes
    assert split_episodes(10, 6, 3, seed=1) != (train, val)


@pytest.mark.parametrize("num_train, num_val", [(4, 1), (9, 0), (None, 4)])
def test_asking_for_more_episodes_than_exist_is_a_clear_error(num_train: int | None, num_val: int) -> None:
    with pytest.raises(DatasetError, match="the dataset holds 4.*train_configs/smoke.json"):
        split_episodes(4, num_train, num_val, seed=0)


def test_cache_holds_exactly_what_the_reader_decodes(tiny_dataset: Path, cache: FrameCache) -> None:
    lengths = list_episodes(tiny_dataset, CAMERA_NAMES)
    assert cache.episodes == [2, 0]
    assert cache.starts.tolist() == [0, lengths[2], lengths[2] + lengths[0]]
    for k, index in enumerate(cache.episodes):
        episode = read_episode(tiny_dataset, CAMERA_NAMES, index)
        rows = slice(cache.starts[k], cache.starts[k + 1])
        for view in CAMERA_NAMES:
            np.testing.assert_array_equal(cache.frames[view][rows], episode.images[view])
        np.testing.assert_array_equal(cache.actions[rows], episode.actions)
        assert cache.instructions[k] == episode.instruction
    assert cache.default_instruction() == episode.instruction


def test_frames_of_another_size_are_resized_once_while_decoding(tiny_dataset: Path) -> None:
    small = load_frame_cache(tiny_dataset, ("wrist",), [1], (48, 40), progress=False)
    assert small.frames["wrist"].shape[1:] == (48, 40, 3) and small.frames["wrist"].dtype == np.uint8


def test_windows_are_right_aligned_left_padded_and_masked(cache: FrameCache) -> None:
    ds = windows(cache)
    assert len(ds) == int(cache.lengths.sum())  # one window per frame
    tokens = ActionTokenizer(256).tokenize(cache.actions)
    first = ds[0]  # the episode's first frame: one real step, T - 1 padded ones
    assert first["images"].shape == (T, len(CAMERA_NAMES), *SIZE, 3) and first["images"].dtype == np.uint8
    assert first["valid"].tolist() == [False] * (T - 1) + [True]
    assert not first["images"][: T - 1].any() and not first["tokens"][: T - 1].any()
    np.testing.assert_array_equal(first["images"][-1, 0], cache.frames["front"][0])
    np.testing.assert_array_equal(first["tokens"][-1], tokens[0])
    later = ds[T + 1]  # frames 2..T+1: a full window
    assert later["valid"].all()
    for step in range(T):
        np.testing.assert_array_equal(later["images"][step, 1], cache.frames["wrist"][2 + step])
        np.testing.assert_array_equal(later["actions"][step], cache.actions[2 + step])
    second = ds[int(cache.starts[1])]  # the second episode starts fresh: no frame of the first leaks in
    assert second["valid"].sum() == 1
    np.testing.assert_array_equal(second["images"][-1, 0], cache.frames["front"][cache.starts[1]])
    np.testing.assert_allclose(second["instruction"], HashInstructionEncoder(16)(cache.instructions[1]))


def test_predicting_next_ts_pairs_frame_i_with_command_i_plus_1_without_wraparound(cache: FrameCache) -> None:
    ds = windows(cache, next_ts=True)
    assert len(ds) == int((cache.lengths - 1).sum())  # an episode's last frame has no next command
    starts, lengths = cache.starts, cache.lengths
    for k in range(len(lengths)):
        # Episode k's windows start at index starts[k] - k; its last one ends at its second-to-last frame,
        # with the episode's last row as target: the terminate step, not row 0 wrapped around.
        last_window = ds[int(starts[k + 1] - k - 2)]
        end = starts[k] + lengths[k] - 2
        np.testing.assert_array_equal(last_window["images"][-1, 0], cache.frames["front"][end])
        np.testing.assert_array_equal(last_window["actions"][-1], cache.actions[end + 1])
        assert last_window["actions"][-1, -1] == 1.0
        np.testing.assert_array_equal(last_window["actions"][:-1], cache.actions[end - T + 2 : end + 1])


def test_augmentation_is_seeded_per_epoch_and_item_and_keeps_the_window_aligned(cache: FrameCache) -> None:
    plain = windows(cache)
    augmented = windows(cache, augment=RandomCrop(SIZE, 80))
    item = augmented[T + 1]
    assert not np.array_equal(item["images"], plain[T + 1]["images"])
    np.testing.assert_array_equal(item["images"], augmented[T + 1]["images"])  # same (seed, epoch, item)
    augmented.set_epoch(1)
    assert not np.array_equal(item["images"], augmented[T + 1]["images"])
    # One crop per camera and window: frames of a view moved together (the first frame's crop explains all).
    crop = RandomCrop(SIZE, 80)
    frames = cache.frames["front"][2 : T + 2]
    same_for_all = [crop(frames[i : i + 1], np.random.default_rng(0)) for i in range(T)]
    np.testing.assert_array_equal(np.concatenate(same_for_all), crop(frames, np.random.default_rng(0)))
    assert RandomCrop(SIZE, SIZE[0])(frames, np.random.default_rng(0)) is frames  # full-size crop: identity


def test_collate_stacks_with_a_batch_axis(cache: FrameCache) -> None:
    batch = collate_windows([windows(cache)[i] for i in (0, 5, 9)])
    assert batch["images"].shape == (3, T, len(CAMERA_NAMES), *SIZE, 3)
    assert batch["valid"].dtype == torch.bool and batch["tokens"].shape == (3, T, ACTION_SIZE)


def test_a_missing_frame_fails_at_startup_naming_the_episode(tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(tiny_dataset, root)
    (root / "wrist" / EPISODE_DIR.format(1) / RGB_DIR / IMAGE_NAME.format(3)).unlink()
    with pytest.raises(DatasetError, match=f"{EPISODE_DIR.format(1)}.*missing"):
        load_frame_cache(root, CAMERA_NAMES, [0, 1], SIZE, progress=False)
    with pytest.raises(DatasetError, match="episode 7 does not exist"):
        load_frame_cache(root, CAMERA_NAMES, [7], SIZE, progress=False)


def test_concatenated_datasets_seed_augmentation_by_their_global_index(cache: FrameCache) -> None:
    """Two folders' windows, one after another: the first part is the single-folder dataset item for item
    (same crops), and the same frames in the second part get other crops (seeded by the global index)."""
    kwargs = {
        "time_sequence_length": T,
        "predicting_next_ts": False,
        "tokenizer": ActionTokenizer(256),
        "instruction_encoder": HashInstructionEncoder(16),
        "augment": RandomCrop(SIZE, 80),
        "seed": 3407,
    }
    both = concat_windows([cache, cache], **kwargs)
    alone = windows(cache, augment=RandomCrop(SIZE, 80))
    assert len(both) == 2 * len(alone) and both.tokenizer is kwargs["tokenizer"]
    both.set_epoch(1)
    alone.set_epoch(1)
    for k in (0, 7, len(alone) - 1):
        np.testing.assert_array_equal(both[k]["images"], alone[k]["images"])
        second = both[len(alone) + k]
        np.testing.assert_array_equal(second["tokens"], alone[k]["tokens"])
        assert not np.array_equal(second["images"], alone[k]["images"])
    assert both.default_instruction() == cache.default_instruction()


def test_a_root_expands_to_its_panda_folders_and_not_their_frame_caches(tmp_path: Path) -> None:
    for name in ("Panda_stack", "Panda_pick", "Panda_pick.frame_cache", "notes"):
        (tmp_path / "root" / name).mkdir(parents=True)
    (tmp_path / "one" / "front").mkdir(parents=True)
    (tmp_path / "one" / "front" / "dataset_info.json").write_text('{"episode_length": []}')
    paths = [str(tmp_path / "root"), str(tmp_path / "one"), str(tmp_path / "missing")]
    assert expand_dataset_roots(paths, CAMERA_NAMES) == [
        str(tmp_path / "root" / "Panda_pick"),
        str(tmp_path / "root" / "Panda_stack"),
        *paths[1:],
    ]


def test_crop_pixels_follow_a_point_through_crop_and_resize() -> None:
    """A bright dot's centroid after `crop_and_resize` is where `crop_pixels` moves its full-frame pixel;
    a point cropped away is masked."""
    frame = np.zeros((1, 96, 96, 3), np.uint8)
    frame[0, 60:63, 20:23] = 255  # centre (61.5, 21.5) in continuous pixel coordinates
    for offsets in [(0, 0), (8, 3), (4, 8)]:
        cropped = crop_and_resize(frame, *offsets, 8)[0, ..., 0].astype(float)
        rows, cols = np.indices(cropped.shape) + 0.5
        centroid = np.array([(rows * cropped).sum(), (cols * cropped).sum()]) / cropped.sum()
        moved, inside = crop_pixels(np.array([[61.5, 21.5]]), offsets, 8, (96, 96))
        assert inside.all() and np.abs(moved[0] - centroid).max() < 0.2, (offsets, moved, centroid)
    _, inside = crop_pixels(np.array([[2.0, 50.0], [np.nan, np.nan]]), (8, 0), 8, (96, 96))
    assert not inside.any()


def test_keypoint_labels_sit_on_the_target_and_move_with_the_crop(
    tiny_dataset: Path, cache: FrameCache
) -> None:
    """With keypoint labels, each window carries (T, V, K, 2) pixels and a mask that is False at padding. At
    an episode's first frame the target's front-camera label sits on the object (its colour is not the
    table's; PandaPick logs no goal, so the goal has no label), and a randomly cropped window's labels are the
    plain window's moved by its crop."""
    labels = (dataset_geometry(tiny_dataset), 3)
    common = (cache, T, False, ActionTokenizer(256), HashInstructionEncoder(16))
    plain = WindowDataset(*common, keypoints=labels)
    crop = RandomCrop(SIZE, 88)
    cropped = WindowDataset(*common, augment=crop, seed=3407, keypoints=labels)
    front = CAMERA_NAMES.index("front")
    for start in cache.starts[:-1]:
        item = plain[int(start)]  # the window ending at the episode's first frame: T-1 steps of padding
        assert item["keypoints"].shape == (T, len(CAMERA_NAMES), 3, 2)
        assert not item["keypoint_mask"][:-1].any() and item["keypoint_mask"][-1, front, [0, 2]].all()
        row, col = item["keypoints"][-1, front, 0].astype(int)
        image = item["images"][-1, front].astype(float)
        table = np.median(image[-10:].reshape(-1, 3), axis=0)  # the bottom rows show the table
        assert np.abs(image[row - 1 : row + 2, col - 1 : col + 2].mean((0, 1)) - table).max() > 40
    for index in (3, 10):
        a, b = plain[index], cropped[index]
        np.testing.assert_array_equal(a["images"][a["valid"]].shape, b["images"][b["valid"]].shape)
        rng = np.random.default_rng((3407, 0, index))
        for v in range(len(CAMERA_NAMES)):
            offsets = crop.offsets(rng)
            moved, inside = crop_pixels(a["keypoints"][:, v], offsets, crop.margin, SIZE)
            keep = inside & a["keypoint_mask"][:, v]
            np.testing.assert_array_equal(b["keypoint_mask"][:, v], keep)
            np.testing.assert_allclose(b["keypoints"][:, v][keep], moved[keep], atol=1e-5)
