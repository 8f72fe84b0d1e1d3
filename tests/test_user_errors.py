"""A user's mistake is one line naming the file, key or folder, found before anything is written; a full disk
too, and it never leaves a half-written file (an mp4 included) under its final name."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from rt1_sim import benchmark as bm
from rt1_sim.cli import USER_ERROR_STATUS, main
from rt1_sim.data.episodes import list_episodes, read_episode
from rt1_sim.errors import DatasetError, OutputError
from rt1_sim.eval import video as video_module
from rt1_sim.eval.video import write_video
from rt1_sim.train import trainer as trainer_module

SUITES = Path(__file__).resolve().parent.parent / "eval_configs" / "multitask"


def one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *named: str) -> str:
    """The command failed with the user-error status and one stderr line naming each of `named`."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("rt1-sim ")]  # not the progress bars
    assert rc == USER_ERROR_STATUS, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err and "Logging error" not in err, err[-3000:]
    for text in named:
        assert text in lines[0], lines[0]
    return lines[0]


def train_config(tmp_path: Path, data: Path, **keys: Any) -> Path:
    """A micro training run of two steps on `data`, into tmp_path/runs/a."""
    cfg = {
        "data_path": str(data),
        "log_dir": str(tmp_path / "runs"),
        "run_name": "a",
        "device": "cpu",
        "preset": "micro",
        "batch_size": 2,
        "epochs": 1,
        "max_steps": 2,
        "instruction_encoder": "hash",
        "frame_cache": "memory",
        "tensorboard": False,
        "progress": False,
        **keys,
    }
    path = tmp_path / "train.json"
    path.write_text(json.dumps(cfg))
    return path


def deny_reading(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Reading the file `denied` fails as it does without read permission (tests run as root, which reads
    everything)."""
    real_read_text, real_read_csv = Path.read_text, pd.read_csv

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        if Path(self).resolve() == denied.resolve():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_read_text(self, *args, **kwargs)

    def read_csv(path: Any, *args: Any, **kwargs: Any) -> pd.DataFrame:
        if Path(path).resolve() == denied.resolve():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_read_csv(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(pd, "read_csv", read_csv)


# ---------------------------------------------------------------- train
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("network_configs.image_height=100000", "image_height"),
        ("network_configs.image_width=5000", "image_width"),
        ("time_sequence_length=100000", "time_sequence_length"),
        ("network_configs.vocab_size=100000000", "vocab_size"),
        ("torch_threads=100000", "torch_threads"),
        (f"run_name={'x' * 300}", "run folder"),
    ],
)
def test_absurd_train_settings_are_one_line_before_anything_is_written(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str], override: str, named: str
) -> None:
    config = train_config(tmp_path, tiny_dataset)
    rc = main(["train", "--config", str(config), "--set", override])
    one_line_error(capsys, rc, named)
    assert not (tmp_path / "runs").exists()


def test_a_folder_or_unreadable_file_as_config_is_one_line(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_line_error(capsys, main(["train", "--config", str(tmp_path)]), str(tmp_path), "is a folder")
    config = train_config(tmp_path, tiny_dataset)
    deny_reading(monkeypatch, config)
    one_line_error(capsys, main(["train", "--config", str(config)]), str(config), "Permission denied")


def test_imagenet_weights_that_are_no_checkpoint_are_refused_before_the_data_is_read(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    not_weights = tmp_path / "notes.json"
    not_weights.write_text("{}")
    config = train_config(tmp_path, tiny_dataset, imagenet_weights=str(not_weights))

    def build_data(*args: Any) -> None:
        raise AssertionError("the data was read before imagenet_weights was checked")

    monkeypatch.setattr(trainer_module, "build_data", build_data)
    rc = main(["train", "--config", str(config)])
    one_line_error(capsys, rc, "imagenet_weights", str(not_weights), "not a torch state_dict")
    assert not (tmp_path / "runs").exists()


def test_unreadable_dataset_files_are_one_line_naming_the_file(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    csv = data / "front" / "data_001" / "results.csv"
    deny_reading(monkeypatch, csv)
    with pytest.raises(DatasetError, match="data_001/results.csv: cannot read it"):
        read_episode(data, ("front", "wrist"), 1)
    rc = main(["train", "--config", str(train_config(tmp_path, data))])
    one_line_error(capsys, rc, str(csv), "Permission denied")
    info = data / "wrist" / "dataset_info.json"
    deny_reading(monkeypatch, info)
    with pytest.raises(DatasetError, match="wrist/dataset_info.json: cannot read it"):
        list_episodes(data, ("front", "wrist"))


# ---------------------------------------------------------------- collect, eval, plot
def test_absurd_image_size_is_refused_before_collecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    rc = main(["collect", "--out", str(out), "--episodes", "1", "--image-size", "100000", "100000"])
    one_line_error(capsys, rc, "image_size", "1..1024")
    assert not out.exists()


def test_absurd_video_scale_is_refused_before_evaluating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "e"
    argv = ["eval", "--policy", "scripted", "--episodes", "1", "--out", str(out), "--video", "all"]
    one_line_error(capsys, main([*argv, "--video-scale", "100000"]), "--video-scale 100000", "at most")
    assert not out.exists()


def test_plot_into_a_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,epoch,time_s,train/loss\n1,0.5,1.0,5.5\n")
    rc = main(["plot", str(run), "--out", str(tmp_path)])
    one_line_error(capsys, rc, f"--out {tmp_path}", "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ---------------------------------------------------------------- benchmark
@pytest.fixture()
def small_suites(tmp_path: Path) -> Path:
    """The shipped `seen` split with one family: a benchmark whose checks take a second."""
    suites = tmp_path / "suites"
    suites.mkdir()
    shutil.copy(SUITES / "seen.json", suites)
    manifest = {"splits": ["seen"], "families": ["pick"], "episodes_per_cell": 1, "family_seed_stride": 100}
    (suites / bm.MANIFEST_FILE).write_text(json.dumps(manifest))
    return suites


@pytest.mark.parametrize(
    ("mistake", "named"),
    [
        ("policy_missing", "missing.pt"),
        ("suites_file", "--suites"),
        ("out_file", "is a file"),
        ("episodes_per_cell_word", "episodes_per_cell"),
        ("episodes_per_cell_zero", "--episodes-per-cell"),
        ("set_unknown_key", "--set splitz"),
        ("config_folder", "--config"),
    ],
)
def test_benchmark_mistakes_are_one_line_and_write_nothing(
    tmp_path: Path, small_suites: Path, capsys: pytest.CaptureFixture[str], mistake: str, named: str
) -> None:
    out = tmp_path / "b"
    options = {"--policy": "scripted", "--suites": str(small_suites), "--out": str(out)}
    if mistake == "policy_missing":
        options["--policy"] = str(tmp_path / "missing.pt")
    elif mistake == "suites_file":
        options["--suites"] = str(small_suites / "seen.json")
    elif mistake == "out_file":
        options["--out"] = str(small_suites / "seen.json")
    elif mistake == "episodes_per_cell_word":
        manifest = json.loads((small_suites / bm.MANIFEST_FILE).read_text())
        (small_suites / bm.MANIFEST_FILE).write_text(json.dumps({**manifest, "episodes_per_cell": "ten"}))
    elif mistake == "set_unknown_key":
        options["--set"] = 'splitz=["seen"]'
    elif mistake == "config_folder":
        del options["--suites"]
        options["--config"] = str(small_suites)
    else:
        options["--episodes-per-cell"] = "0"  # was taken as "the manifest's"
    before = sorted(small_suites.iterdir())
    rc = main(["benchmark", "--no-examples", *[x for kv in options.items() for x in kv]])
    one_line_error(capsys, rc, named)
    assert not out.exists() and sorted(small_suites.iterdir()) == before


# ---------------------------------------------------------------- a full disk
def _full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder: Path, suffix: str) -> list[str]:
    return sorted(p.name for p in folder.rglob(f"*{suffix}"))


def test_a_full_disk_in_collect_is_one_line_naming_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", _full)  # the episode's frames (one worker: in this process)
    out = tmp_path / "c"
    rc = main(["collect", "--out", str(out), "--episodes", "1"])
    one_line_error(capsys, rc, str(out), "No space left on device")
    assert not list(out.glob("*/data_*")) and not list(out.glob("*/.tmp_*"))  # no episode, no staging left


def test_a_full_disk_in_train_leaves_no_checkpoint_and_is_one_line(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    real_save = torch.save

    def save_half(state: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        real_save(state, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # what the disk took
        _full()

    monkeypatch.setattr(torch, "save", save_half)
    rc = main(["train", "--config", str(train_config(tmp_path, tiny_dataset))])
    run = tmp_path / "runs" / "a"
    one_line_error(capsys, rc, str(run / "checkpoint_last.pt"), "No space left on device")
    assert _leftovers(run, ".pt") == []  # neither under its name nor as a temporary file


def test_a_full_disk_in_metrics_is_one_line(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv

    monkeypatch.setattr(csv.DictWriter, "writerow", _full)
    rc = main(["train", "--config", str(train_config(tmp_path, tiny_dataset))])
    one_line_error(capsys, rc, str(tmp_path / "runs" / "a" / "metrics.csv"), "No space left")


def _no_free_space(path: Any) -> SimpleNamespace:
    return SimpleNamespace(total=10, used=10, free=0)


class _HalfWriter:
    """imageio's ffmpeg writer as it behaves on a full disk: ffmpeg stops mid-file, imageio raises nothing."""

    def __init__(self, path: Any, **kwargs: Any) -> None:
        self.path = Path(path)

    def __enter__(self) -> _HalfWriter:
        return self

    def append_data(self, frame: Any) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        whole = next((Path(__file__).parent.parent / "assets" / "checkpoints").rglob("*.mp4")).read_bytes()
        self.path.write_bytes(whole[: len(whole) // 2])


def test_an_mp4_ffmpeg_could_not_finish_never_sits_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rt1_sim.files import complete_mp4

    whole = next((Path(__file__).parent.parent / "assets" / "checkpoints").rglob("*.mp4"))
    assert complete_mp4(whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:-100])
    assert not complete_mp4(cut)
    monkeypatch.setattr(video_module.imageio, "get_writer", _HalfWriter)
    monkeypatch.setattr(video_module.shutil, "disk_usage", _no_free_space)
    target = tmp_path / "videos" / "seed_7.mp4"
    target.parent.mkdir()
    with pytest.raises(OutputError, match="seed_7.mp4: cannot write it: No space left on device"):
        write_video(target, [], fps=10)
    assert list(target.parent.iterdir()) == []


def test_a_full_disk_in_eval_and_benchmark_videos_is_one_line(
    tmp_path: Path,
    small_suites: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(video_module.imageio, "get_writer", _HalfWriter)
    monkeypatch.setattr(video_module.shutil, "disk_usage", _no_free_space)
    out = tmp_path / "e"
    argv = ["eval", "--policy", "scripted", "--episodes", "1", "--out", str(out), "--video", "all"]
    one_line_error(capsys, main([*argv, "--workers", "1"]), str(out / "videos"), "No space left")
    assert _leftovers(out, ".mp4") == []
    bench = tmp_path / "b"
    argv = ["benchmark", "--policy", "scripted", "--suites", str(small_suites), "--out", str(bench)]
    one_line_error(capsys, main(argv), str(bench / "examples"), "No space left")
    assert _leftovers(bench, ".mp4") == []
