"""Datasets in the IO reproduction's layout: episode reading/writing (numpy only)."""

from rt1_sim.data.episodes import (
    DatasetError,
    Episode,
    EpisodeRecorder,
    list_episodes,
    read_episode,
    write_dataset_info,
    write_episode,
)

__all__ = [
    "DatasetError",
    "Episode",
    "EpisodeRecorder",
    "list_episodes",
    "read_episode",
    "write_dataset_info",
    "write_episode",
]
