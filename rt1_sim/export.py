"""`rt1-sim export --format lerobot DATA_DIR --out OUT`: a dataset of ours (one folder, or a multi-task root
of `Panda_*` folders) as one LeRobot dataset (rt1_sim/data/lerobot_format.py says what maps to what).

`rt1-sim train` reads the result back as it is (`data_path` OUT), and LeRobot opens it offline with
`LeRobotDataset(repo_id, root=OUT)`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from envs.spaces import CAMERA_NAMES
from rt1_sim.data.episodes import expand_dataset_roots, list_episodes
from rt1_sim.data.sources import is_lerobot_dataset
from rt1_sim.errors import DatasetError, OutputError
from rt1_sim.run_layout import COLLECT_CONFIG_FILE

log = logging.getLogger(__name__)

FORMATS = ("lerobot",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rt1_sim.data.lerobot_format import DEFAULT_CODEC, DEFAULT_CRF, VIDEO_CODECS

    parser.add_argument(
        "data_dir", type=Path, metavar="DATA_DIR", help="a dataset folder, or a multi-task root"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="lerobot", help="output format (default lerobot)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the LeRobot dataset folder to write (new or empty)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    parser.add_argument(
        "--views",
        nargs="+",
        default=None,
        help="cameras to export (default: the ones the dataset was collected with)",
    )
    parser.add_argument(
        "--fps", type=int, default=None, help="frame rate (default: the env's control rate, 10)"
    )
    parser.add_argument(
        "--codec",
        choices=sorted(VIDEO_CODECS),
        default=DEFAULT_CODEC,
        help=f"video codec (default {DEFAULT_CODEC})",
    )
    parser.add_argument(
        "--crf", type=int, default=DEFAULT_CRF, help=f"video quality, lower is better (default {DEFAULT_CRF})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _collect_settings(folders: list[Path]) -> dict[str, Any]:
    """The first folder's collect_config.json ({} when there is none, e.g. a dataset of IO's)."""
    path = folders[0] / COLLECT_CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def run(args: argparse.Namespace) -> int:
    from rt1_sim.data.lerobot_format import (
        DEFAULT_FPS,
        OUTPUT_ENTRIES,
        STAGING,
        _pyarrow,
        check_video_options,
        export_lerobot,
    )
    from rt1_sim.outputs import check_unlocked, lock_folder, make_folder, prepare_folder

    data_dir: Path = args.data_dir
    if not data_dir.is_dir():
        raise DatasetError(f"DATA_DIR {data_dir}: dataset folder does not exist")
    if is_lerobot_dataset(data_dir):
        raise DatasetError(f"DATA_DIR {data_dir}: already a LeRobot dataset (meta/info.json)")
    if args.fps is not None and args.fps < 1:
        raise OutputError(f"--fps {args.fps}: must be >= 1")
    check_video_options(args.codec, args.crf)
    _pyarrow()
    views = tuple(args.views) if args.views else None
    folders = [Path(p) for p in expand_dataset_roots([str(data_dir)], views or CAMERA_NAMES)]
    settings = _collect_settings(folders)
    views = views or tuple(settings.get("views") or CAMERA_NAMES)
    fps = args.fps or int((settings.get("env_options") or {}).get("control_hz", DEFAULT_FPS))
    episodes = sum(len(list_episodes(f, views)) for f in folders)  # every folder readable before any write
    ours = (*OUTPUT_ENTRIES, STAGING)
    check_unlocked(args.out, "--out")
    prepare_folder(args.out, "--out", ours, args.overwrite)
    started = time.perf_counter()
    with lock_folder(args.out, "--out"):
        remove = prepare_folder(args.out, "--out", ours, args.overwrite)  # again, now that it is ours
        make_folder(args.out, "--out", [p for p in remove if p.name == STAGING])
        log.info(
            "export %d episodes of %d dataset folder(s), cameras %s, %d fps, %s crf %d -> %s",
            episodes, len(folders), "+".join(views), fps, args.codec, args.crf, args.out,
        )  # fmt: skip
        info = export_lerobot(
            folders, views, args.out, fps, args.codec, args.crf, progress=not args.no_progress
        )
    seconds = time.perf_counter() - started
    print(
        f"exported {info['total_episodes']} episodes, {info['total_frames']} frames, "
        f"{info['total_tasks']} tasks to {args.out} (LeRobot {info['codebase_version']}, {fps} fps) "
        f"in {seconds:.1f} s"
    )
    return 0
