"""Anonymous memory and time to the first step of `rt1-sim train` against dataset size, with frames decoded
into memory (`frame_cache: memory`) and read from the memory-mapped cache on disk (`frame_cache: memmap`,
first run: builds it; second run: reuses it).

Datasets of every size are made from one collected dataset (`--source`) by symlinking its episode folders in
turn (episode k of the new dataset is episode k mod M of the source), with a consistent dataset_info.json:
every frame is still read and decoded per episode, as for distinct files. Each run is the
`train_configs/cpu.json` config for `--steps` steps (no validation episodes, no closed-loop evaluation) as its
own process; its `RssAnon` and `RssFile` (from /proc/<pid>/status) are sampled every 50 ms and the peaks
reported; time to first step runs from the process start to the first row of metrics.csv (written after step
1), and "data ready" to the log line that ends data loading (the part the frame cache changes; the rest is
imports, model construction and the first step itself).

`--build-cost N` instead times, in this process, building the cache of the N-episode dataset (into a fresh
temporary folder) against decoding it into memory, in alternating rounds: wall and CPU seconds, since on a
shared machine the wall time mostly measures the other processes.

    rt1-sim collect --out /tmp/ds200 --episodes 200 --workers 1 --seed 0
    python benchmarks/train_memory.py --source /tmp/ds200 --episodes 200 800 3200 [--work DIR] [--json]
    python benchmarks/train_memory.py --source /tmp/ds200 --build-cost 800 [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envs.spaces import CAMERA_NAMES
from rt1_sim.cli import positive_int
from rt1_sim.data.episodes import DATASET_INFO_FILE, EPISODE_DIR, list_episodes
from rt1_sim.data.frame_cache import CACHE_SUFFIX, open_frame_store
from rt1_sim.data.windows import load_frame_cache

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "train_configs" / "cpu.json"

# `rt1-sim bench` runs this script only when named: it needs a collected dataset.
BENCH_SKIP = "needs --source DATASET: rt1-sim bench train_memory --arg=--source --arg=DATASET"


def make_dataset(source: Path, out: Path, episodes: int) -> Path:
    """`episodes` episodes in the IO layout at `out`, episode k a symlink to episode k mod M of `source`."""
    lengths = list_episodes(source, CAMERA_NAMES)
    if out.exists():
        shutil.rmtree(out)
    for view in CAMERA_NAMES:
        (out / view).mkdir(parents=True)
        for k in range(episodes):
            target = (source / view / EPISODE_DIR.format(k % len(lengths))).resolve()
            (out / view / EPISODE_DIR.format(k)).symlink_to(target, target_is_directory=True)
        info = {"episode_length": [lengths[k % len(lengths)] for k in range(episodes)]}
        (out / view / DATASET_INFO_FILE).write_text(json.dumps(info))
    return out


def status_kb(pid: int) -> dict[str, int]:
    """RssAnon and RssFile of process `pid` in KiB ({} once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile") if k in fields}


def run_train(data: Path, work: Path, name: str, mode: str, steps: int) -> dict[str, float]:
    """One `rt1-sim train` process: peak RssAnon / RssFile (MiB), seconds to the first step and in all."""
    overrides = {
        "data_path": str(data),
        "log_dir": str(work / "runs"),
        "run_name": name,
        "frame_cache": mode,
        "max_steps": steps,
        "eval_config": None,
        "num_val_episode": 0,
        "log_every_steps": 1,
        "progress": False,
    }
    cmd = [sys.executable, "-m", "rt1_sim.cli", "train", "--config", str(CONFIG)]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    metrics = work / "runs" / name / "metrics.csv"
    started, wall = time.perf_counter(), time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"RssAnon": 0, "RssFile": 0}
    first_step = None
    while proc.poll() is None:
        for key, value in status_kb(proc.pid).items():
            peak[key] = max(peak[key], value)
        if first_step is None and metrics.is_file() and len(metrics.read_text().splitlines()) > 1:
            first_step = time.perf_counter() - started
        time.sleep(0.05)
    total = time.perf_counter() - started
    log = proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log[-3000:]}")
    return {
        "data_ready_s": round(data_ready(log) - wall, 1),
        "rss_anon_mib": round(peak["RssAnon"] / 1024, 1),
        "rss_file_mib": round(peak["RssFile"] / 1024, 1),
        "first_step_s": round(first_step if first_step is not None else total, 1),
        "total_s": round(total, 1),
    }


def data_ready(log: str) -> float:
    """The time (epoch seconds) of the training data's "data <path>: N train episodes ..." log line."""
    line = next(line for line in log.splitlines() if " rt1_sim.train.data: data " in line)
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def measure(args: argparse.Namespace) -> list[dict]:
    """Per dataset size: the in-memory run, then a first and a second memory-mapped run."""
    rows = []
    for episodes in args.episodes:
        data = make_dataset(args.source, args.work / f"ds{episodes}", episodes)
        shutil.rmtree(data.parent / f"{data.name}{CACHE_SUFFIX}", ignore_errors=True)
        frames = sum(list_episodes(data, CAMERA_NAMES))
        row = {"episodes": episodes, "frames": frames}
        for label, mode in (("memory", "memory"), ("memmap_first", "memmap"), ("memmap_second", "memmap")):
            result = run_train(data, args.work, f"{label}-{episodes}", mode, args.steps)
            row.update({f"{label}/{k}": v for k, v in result.items()})
            print(json.dumps({"episodes": episodes, "run": label, **result}), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def build_cost(args: argparse.Namespace) -> list[dict]:
    """Wall and CPU seconds of building the cache and of decoding into memory, `args.rounds` rounds each."""
    data = make_dataset(args.source, args.work / f"ds{args.build_cost}", args.build_cost)
    size = (96, 96)  # the cpu preset's, the collected frames' own
    rows = []
    for _ in range(args.rounds):
        for label in ("memmap_build", "memory_decode"):
            wall, cpu = time.perf_counter(), time.process_time()
            if label == "memory_decode":
                load_frame_cache(data, CAMERA_NAMES, range(args.build_cost), size, progress=False)
            else:
                with tempfile.TemporaryDirectory(dir=args.work) as folder:
                    open_frame_store(data, CAMERA_NAMES, size, cache_dir=folder, progress=False)
            rows.append(
                {
                    "run": label,
                    "episodes": args.build_cost,
                    "wall_s": round(time.perf_counter() - wall, 1),
                    "cpu_s": round(time.process_time() - cpu, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a collected dataset (IO layout)")
    parser.add_argument("--episodes", type=positive_int, nargs="+", default=[200, 800, 3200])
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/rt1_train_memory"),
        help="where the datasets, their caches and the runs go (replaced)",
    )
    parser.add_argument("--steps", type=positive_int, default=3, help="training steps per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--build-cost", type=positive_int, metavar="N", help="time building against decoding instead"
    )
    parser.add_argument("--rounds", type=positive_int, default=3)
    args = parser.parse_args()
    if args.build_cost:
        build_cost(args)
        return
    if (args.work / "runs").exists():
        shutil.rmtree(args.work / "runs")
    rows = measure(args)
    if args.json:
        print(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}))
        return
    print(
        "| episodes | frames | RssAnon, memory | RssAnon, memmap 1st / 2nd run | RssFile, memmap 2nd run "
        "| data ready, memory | data ready, memmap 1st / 2nd | first step, memory "
        "| first step, memmap 1st / 2nd |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['episodes']} | {r['frames']} | {r['memory/rss_anon_mib']:.0f} MiB "
            f"| {r['memmap_first/rss_anon_mib']:.0f} / {r['memmap_second/rss_anon_mib']:.0f} MiB "
            f"| {r['memmap_second/rss_file_mib']:.0f} MiB | {r['memory/data_ready_s']:.1f} s "
            f"| {r['memmap_first/data_ready_s']:.1f} / {r['memmap_second/data_ready_s']:.1f} s "
            f"| {r['memory/first_step_s']:.1f} s "
            f"| {r['memmap_first/first_step_s']:.1f} / {r['memmap_second/first_step_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
