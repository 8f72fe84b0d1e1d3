"""Training data on disk in either layout: ours (IO's, rt1_sim.data.episodes) or LeRobot's
(rt1_sim.data.lerobot_format). Whatever reads episodes for training lists and reads them through here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rt1_sim.data import episodes, lerobot_format
from rt1_sim.data.episodes import Episode
from rt1_sim.errors import DatasetError


def is_lerobot_dataset(root: str | Path) -> bool:
    """A dataset in LeRobot's format: it holds `meta/info.json`."""
    return (Path(root) / lerobot_format.INFO_FILE).is_file()


def list_episodes(root: str | Path, views: Sequence[str]) -> list[int]:
    """The episode lengths of the dataset at `root`, checked for the cameras `views` (and, for a LeRobot
    dataset, an 8-d action)."""
    if is_lerobot_dataset(root):
        source = lerobot_format.open_source(root)
        source.check(views)
        return source.lengths
    return episodes.list_episodes(Path(root), views)


def read_episode(
    root: str | Path, views: Sequence[str], index: int, expected_length: int | None = None
) -> Episode:
    """Episode `index` with the cameras `views`; a DatasetError names what is wrong with it."""
    if not is_lerobot_dataset(root):
        return episodes.read_episode(Path(root), views, index, expected_length)
    episode = lerobot_format.open_source(root).read(views, index)
    if expected_length is not None and len(episode) != expected_length:
        raise DatasetError(f"{root}: episode {index} has {len(episode)} frames, not {expected_length}")
    return episode


def content_stats(root: str | Path) -> list[tuple[str, int, int]] | None:
    """For a LeRobot dataset, (path, size, mtime_ns) of all its files, whose files each hold many episodes;
    None for ours (its files are per episode: the frame cache hashes those)."""
    return lerobot_format.file_stats(root) if is_lerobot_dataset(root) else None
