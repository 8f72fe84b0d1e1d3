"""Training data: every episode decoded once into a uint8 frame cache, and a torch Dataset of history windows.

Window k ends at a target frame e of some episode and holds the `time_sequence_length` (T) frames e-T+1..e of
every camera, right-aligned (the newest frame at T-1) and left-padded with zeros before the episode start,
with a (T,) `valid` mask that keeps the padding out of attention and loss. Every step of the window carries
its action target, so one window trains T targets while encoding each of its frames once.

With `predicting_next_ts` frame i is paired with the command of row i+1 (IO's datasets log the command that
led to a frame); the last frame of an episode then has no command and is never used (IO wrapped row 0 to it).

Items hold uint8 images; `rt1_sim.preprocess.images_to_tensor` makes a batch float on the training device.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset
from tqdm import tqdm

from envs.geometry import hand_poses
from envs.spaces import ACTION_SIZE, JOINT_COLUMNS
from rt1_sim.data.episodes import DatasetError, Episode
from rt1_sim.data.keypoints import HAND_SIZE, CameraGeometry, crop_pixels, frame_pixels
from rt1_sim.data.sources import list_episodes, read_episode
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.instruction import InstructionEncoder, cached_encoder
from rt1_sim.preprocess import center_crop, crop_and_resize, crop_margin, resize_images

log = logging.getLogger(__name__)


SMOKE_CONFIG = "train_configs/smoke.json"
# Privileged state per frame, for the training-only state head (rt1_sim.model.state_head): the target's
# position, then the goal position (NaN where the dataset logs none).
STATE_SIZE = 6


def episode_states(episode: Episode) -> np.ndarray:
    """(L, STATE_SIZE) float32: the target object's xyz (results_raw.csv's tar_obj_pose_x/y/z) and the goal's
    (goal_pos_x/y/z, NaN when the episode has none)."""
    target = episode.raw_states[:, len(JOINT_COLUMNS) : len(JOINT_COLUMNS) + 3]
    goal = episode.goals if episode.goals is not None else np.full((len(episode), 3), np.nan)
    return np.concatenate([target, goal], axis=1).astype(np.float32)


def episode_hands(episode: Episode) -> np.ndarray:
    """(L, HAND_SIZE) float32: the end effector's position and xyzw quaternion per frame, from the logged
    joints (results_raw.csv's joint_0..8) by forward kinematics."""
    return hand_poses(episode.raw_states[:, : len(JOINT_COLUMNS)]).astype(np.float32)


def split_episodes(
    num_episodes: int, num_train: int | None, num_val: int, seed: int
) -> tuple[list[int], list[int]]:
    """IO's split: a permutation of the episode indices seeded by `seed`; the first `num_train` are training
    episodes, the next `num_val` validation ones (`num_train` None: all that remain after validation)."""
    hint = (
        "collect more episodes, or lower num_train_episode / num_val_episode (--set num_val_episode=4); "
        f"{SMOKE_CONFIG} trains on a 20-episode dataset in a few minutes"
    )
    if num_train is None and num_val >= num_episodes:
        raise DatasetError(
            f"the dataset holds {num_episodes} episodes, and num_val_episode={num_val} leaves none for "
            f"training; {hint}"
        )
    if num_train is None:
        num_train = num_episodes - num_val
    if num_train < 1 or num_train + num_val > num_episodes:
        raise DatasetError(
            f"asked for {num_train} training + {num_val} validation episodes, but the dataset "
            f"holds {num_episodes}; {hint}"
        )
    order = np.random.default_rng(seed).permutation(num_episodes).tolist()
    return order[:num_train], order[num_train : num_train + num_val]


@dataclass
class FrameCache:
    """Decoded episodes, concatenated: frame j of episode k is row `starts[k] + j` of every array."""

    views: tuple[str, ...]
    # view -> (N, H, W, 3) uint8 at the network's image size: an array, or frame_cache.MappedFrames (on disk)
    frames: dict[str, np.ndarray]
    actions: np.ndarray  # (N, ACTION_SIZE) float32
    starts: np.ndarray  # (K + 1,) int64 offsets of the K episodes
    instructions: list[str]  # per episode
    episodes: list[int]  # dataset index (data_XXX) of each episode
    states: np.ndarray | None = None  # (N, STATE_SIZE) float32 (`episode_states`); None: not loaded
    hands: np.ndarray | None = None  # (N, HAND_SIZE) float32 (`episode_hands`); None: not loaded

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def default_instruction(self) -> str:
        """The most common instruction (what a policy uses when it is given none)."""
        return Counter(self.instructions).most_common(1)[0][0] if self.instructions else ""


def load_frame_cache(
    root: str | Path,
    views: Sequence[str],
    episodes: Sequence[int],
    image_size: tuple[int, int],
    progress: bool = True,
) -> FrameCache:
    """Read and decode `episodes` of the dataset at `root` once (the reader's DatasetError names any bad
    file); frames of another size are resized to `image_size` (H, W) here, once."""
    lengths = list_episodes(root, views)
    frames: dict[str, list[np.ndarray]] = {v: [] for v in views}
    actions, states, hands, instructions, starts = [], [], [], [], [0]
    resized = False
    for index in tqdm(episodes, desc="decode episodes", unit="ep", disable=not progress, mininterval=1.0):
        if not 0 <= index < len(lengths):
            raise DatasetError(f"{root}: episode {index} does not exist (the dataset holds {len(lengths)})")
        episode = read_episode(root, views, index, lengths[index])
        for v in views:
            resized |= episode.images[v].shape[1:3] != image_size
            frames[v].append(resize_images(episode.images[v], image_size))
        actions.append(episode.actions)
        states.append(episode_states(episode))
        hands.append(episode_hands(episode))
        instructions.append(episode.instruction)
        starts.append(starts[-1] + len(episode))
    if resized:
        log.info("frames of %s resized to the network's %dx%d once, while decoding", root, *image_size)
    empty = np.zeros((0, *image_size, 3), np.uint8)
    return FrameCache(
        views=tuple(views),
        frames={v: np.concatenate(f) if f else empty for v, f in frames.items()},
        actions=np.concatenate(actions) if actions else np.zeros((0, ACTION_SIZE), np.float32),
        starts=np.asarray(starts, np.int64),
        instructions=instructions,
        episodes=list(episodes),
        states=np.concatenate(states) if states else np.zeros((0, STATE_SIZE), np.float32),
        hands=np.concatenate(hands) if hands else np.zeros((0, HAND_SIZE), np.float32),
    )


class RandomCrop:
    """IO's training augmentation: one random crop per camera and window (the same for its T frames, so the
    motion between frames is kept), resized back to the full image, so the scene is also magnified (RT-1's
    TF code pads and crops back instead: a shift alone). The crop is `crop_size` on the image's shorter side
    (the same margin is taken off the longer side)."""

    def __init__(self, image_size: tuple[int, int], crop_size: int) -> None:
        self.image_size = image_size
        self.margin = crop_margin(image_size, crop_size)

    def offsets(self, rng: np.random.Generator | None) -> tuple[int, int]:
        """(top, left) of a crop, drawn from `rng` (nothing is drawn without a margin)."""
        if self.margin == 0 or rng is None:
            return 0, 0
        return int(rng.integers(0, self.margin + 1)), int(rng.integers(0, self.margin + 1))

    def apply(self, frames: np.ndarray, offsets: tuple[int, int]) -> np.ndarray:
        """(T, H, W, 3) uint8 -> (T, H, W, 3) uint8: the crop at `offsets`, resized back."""
        if self.margin == 0:
            return frames
        # PIL, not torch: a few small images are cheaper without torch's thread pool (and its contention).
        return crop_and_resize(frames, *offsets, self.margin)

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(T, H, W, 3) uint8 -> (T, H, W, 3) uint8."""
        return self.apply(frames, self.offsets(rng))


class CenterCrop:
    """The frames a policy trained with `RandomCrop` sees when its checkpoint records inference_crop "center"
    (`center_crop`): what validation windows get."""

    def __init__(self, crop_size: int) -> None:
        self.crop_size = crop_size

    def crop(self, image_size: tuple[int, int]) -> tuple[tuple[int, int], int]:
        """((top, left), margin) of the centred crop of a frame of `image_size` (H, W)."""
        margin = crop_margin(image_size, self.crop_size)
        return (margin // 2, margin // 2), margin

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return center_crop(frames, self.crop_size)


class WindowDataset(Dataset):
    """History windows over a FrameCache; item k is the window ending at the k-th target frame.

    Item: {"images": (T, V, H, W, 3) uint8, "valid": (T,) bool, "tokens": (T, A) int64 action tokens,
    "actions": (T, A) float32 (the continuous targets), "instruction": (E,) float32}, and, when the cache
    holds them, "states": (T, STATE_SIZE) float32 privileged positions with "state_mask" (T, STATE_SIZE) bool
    (False at padding and where the dataset logs none); with `keypoints` ((camera geometry, K)),
    "keypoints": (T, V, K, 2) float32 (row, column) pixels of target, goal and gripper in each camera's
    (cropped) frame, with "keypoint_mask" (T, V, K) bool (False at padding and for points off the image).
    `augment` (`RandomCrop` for training windows, `CenterCrop` for validation where the policy crops) crops
    every window with a generator seeded by (seed, epoch, item): the data of
    an epoch does not depend on worker count, order of loading, or where a run was resumed. `index_offset` is
    added to the item for that seed: the windows of several datasets, concatenated (`WindowConcat`), are
    seeded by their index in the concatenation.
    """

    def __init__(
        self,
        cache: FrameCache,
        time_sequence_length: int,
        predicting_next_ts: bool,
        tokenizer: ActionTokenizer,
        instruction_encoder: InstructionEncoder,
        augment: RandomCrop | CenterCrop | None = None,
        seed: int = 0,
        index_offset: int = 0,
        keypoints: tuple[CameraGeometry, int] | None = None,
    ) -> None:
        self.cache = cache
        self.index_offset = index_offset
        self.time_sequence_length = time_sequence_length
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        shift = 1 if predicting_next_ts else 0
        ends, episode_of = [], []
        for k, (start, length) in enumerate(zip(cache.starts[:-1], cache.lengths)):
            last = start + length - shift  # exclusive: with next_ts the last frame has no command
            ends.extend(range(start, last))
            episode_of.extend([k] * (last - start))
        self.ends = np.asarray(ends, np.int64)  # target frame of every window
        self.episode_of = np.asarray(episode_of, np.int64)
        # Row i holds the target of frame i: action row i + shift, tokenised once for the whole cache. (With
        # next_ts an episode's last row gets the next episode's first action, but no window reads it.)
        self.actions = np.roll(cache.actions, -shift, axis=0) if shift else cache.actions  # (N, A)
        self.tokenizer = tokenizer
        self.tokens = tokenizer.tokenize(self.actions)  # (N, A) int64, with the model's vocabulary
        # Keypoint labels ((geometry, number of maps)): every frame's full-frame pixels, once.
        self.pixels = None
        if keypoints is not None:
            if cache.states is None or cache.hands is None:
                raise DatasetError("keypoint labels need the frames' logged states and hand poses")
            geometry, num_maps = keypoints
            size = cache.frames[cache.views[0]].shape[1:3]
            self.pixels = frame_pixels(cache.states, cache.hands, cache.views, geometry, num_maps, size)
        encode = cached_encoder(instruction_encoder)  # once per distinct instruction, not per episode
        self.instructions = (
            np.stack([encode(s) for s in cache.instructions]).astype(np.float32)
            if cache.instructions
            else np.zeros((0, instruction_encoder.size), np.float32)
        )  # (K, E)

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation of `epoch` (call before the epoch's DataLoader starts its workers)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        t, cache = self.time_sequence_length, self.cache
        end, episode = int(self.ends[index]), int(self.episode_of[index])
        first = max(int(cache.starts[episode]), end - t + 1)
        n = end + 1 - first  # real frames in the window
        rng = None
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, self.index_offset + index))
        size = cache.frames[cache.views[0]].shape[1:]  # (H, W, 3)
        images = np.zeros((t, len(cache.views), *size), np.uint8)  # (T, V, H, W, 3), left-padded
        crops = []  # ((top, left), margin) of each camera's crop, for the keypoint labels
        for i, v in enumerate(cache.views):
            frames = cache.frames[v][first : end + 1]  # (n, H, W, 3)
            if isinstance(self.augment, RandomCrop):
                offsets = self.augment.offsets(rng)
                images[t - n :, i] = self.augment.apply(frames, offsets)
                crops.append((offsets, self.augment.margin))
            elif self.augment is not None:
                images[t - n :, i] = self.augment(frames, rng)
                crops.append(self.augment.crop(size[:2]))
            else:
                images[t - n :, i] = frames
                crops.append(((0, 0), 0))
        valid = np.zeros(t, bool)
        valid[t - n :] = True
        tokens = np.zeros((t, ACTION_SIZE), np.int64)
        tokens[t - n :] = self.tokens[first : end + 1]
        actions = np.zeros((t, ACTION_SIZE), np.float32)
        actions[t - n :] = self.actions[first : end + 1]
        item = {
            "images": images,  # (T, V, H, W, 3)
            "valid": valid,
            "tokens": tokens,
            "actions": actions,
            "instruction": self.instructions[episode],
        }
        if cache.states is not None:
            logged = cache.states[first : end + 1]  # (n, STATE_SIZE), NaN where not logged
            states = np.zeros((t, STATE_SIZE), np.float32)
            mask = np.zeros((t, STATE_SIZE), bool)
            mask[t - n :] = np.isfinite(logged)
            states[t - n :] = np.nan_to_num(logged)
            item.update(states=states, state_mask=mask)
        if self.pixels is not None:
            pixels = self.pixels[first : end + 1]  # (n, V, K, 2) full-frame pixels
            keypoints = np.zeros((t, *pixels.shape[1:]), np.float32)  # (T, V, K, 2)
            inside = np.zeros((t, *pixels.shape[1:3]), bool)  # (T, V, K)
            for i, (offsets, margin) in enumerate(crops):
                keypoints[t - n :, i], inside[t - n :, i] = crop_pixels(
                    pixels[:, i], offsets, margin, size[:2]
                )
            item.update(keypoints=keypoints, keypoint_mask=inside)
        return item


class WindowConcat(ConcatDataset):
    """The window datasets of several dataset folders (one per task family), one after another: what the
    training loop iterates. Part k has `index_offset` = the windows of parts 0..k-1 (`concat_windows`)."""

    datasets: list[WindowDataset]

    @property
    def tokenizer(self) -> ActionTokenizer:
        return self.datasets[0].tokenizer

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation of `epoch` in every part."""
        for part in self.datasets:
            part.set_epoch(epoch)

    def default_instruction(self) -> str:
        """The most common instruction over every part's episodes."""
        counts = Counter(s for part in self.datasets for s in part.cache.instructions)
        return counts.most_common(1)[0][0] if counts else ""


def concat_windows(
    caches: Sequence[FrameCache],
    keypoints: Sequence[tuple[CameraGeometry, int] | None] | None = None,
    **kwargs: Any,
) -> WindowConcat:
    """One WindowDataset per cache (`kwargs` as WindowDataset takes them, `keypoints` one per cache), each
    seeded by its global index."""
    parts: list[WindowDataset] = []
    for i, cache in enumerate(caches):
        labels = keypoints[i] if keypoints is not None else None
        parts.append(
            WindowDataset(cache, index_offset=sum(len(p) for p in parts), keypoints=labels, **kwargs)
        )
    return WindowConcat(parts)


def collate_windows(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack window items into a batch with numpy (torch.stack of small arrays pays for its thread pool)."""
    return {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in items[0]}
