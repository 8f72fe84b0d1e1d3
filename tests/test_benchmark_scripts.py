"""The benchmark scripts run (smallest settings) and print one JSON object with the keys the README quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rt1_sim import bench_scripts as bench
from rt1_sim import cli

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_json(script: str, *args: str) -> dict:
    cmd = [sys.executable, str(BENCHMARKS / script), *args, "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_inference_latency_cached_policy_chooses_ios_actions() -> None:
    result = run_json("inference_latency.py", "--preset", "micro", "--steps", "2", "--no-compile")
    for key in ("preset", "params", "cameras", "time_sequence_length", "cached_ms", "naive_ms", "ratio"):
        assert key in result
    assert result["preset"] == "micro" and result["cameras"] == 2 and result["time_sequence_length"] == 6
    assert result["actions_identical"] is True
    assert result["ratio"] > 1.0


def test_train_throughput_counts_every_target_once() -> None:
    result = run_json(
        "train_throughput.py",
        "--preset",
        "micro",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--batch-size",
        "4",
        "--episodes",
        "4",
        "--episode-length",
        "6",
        "--image-size",
        "40",
    )
    assert result["image_size"] == [40, 40]  # the network and its synthetic frames at --image-size
    for key in ("preset", "samples_per_s", "naive_samples_per_s", "ratio", "loader_windows_per_s"):
        assert result[key] if key == "preset" else result[key] > 0
    assert result["preset"] == "micro" and result["batch_size"] == 4
    # Each window holds 1..6 valid steps: ours trains that many targets per window, never more than T.
    assert result["windows_per_s"] <= result["samples_per_s"] <= 6 * result["windows_per_s"]


def test_instruction_encoder_benchmark_times_use_and_tables_cosines() -> None:
    result = run_json("instruction_encoder.py", "--repeats", "5", "--env-seeds", "2")
    for key in ("use_load_s", "use_cold_ms", "hash_cold_ms", "cached_us", "ratio"):
        assert result[key] > 0, key
    assert result["distinct_instructions"] >= 12
    mean = result["mean_cosine"]
    held, other = mean["held-out paraphrase, same command"], mean["another family"]
    assert held["pairs"] == other["pairs"] == 12  # 6 families x 2 seeds, every held-out scene the same target
    assert held["use"] > other["use"] and abs(held["hash"]) < 0.2  # USE relates paraphrases; hash does not


def test_train_step_options_times_each_variant_on_the_same_batches() -> None:
    result = run_json(
        "train_step_options.py",
        "--preset",
        "micro",
        "--image-size",
        "32",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--batch-size",
        "2",
        "--variants",
        "eager",
        "state_head",
    )
    assert set(result["samples_per_s"]) == {"eager", "state_head"}
    assert all(rate > 0 for rate in result["samples_per_s"].values())
    assert result["ratio_to_eager"]["eager"] == 1.0


def test_eval_batching_measures_each_k_with_the_same_results() -> None:
    result = run_json(
        "eval_batching.py", "--episodes", "3", "--envs", "1", "2", "--workers", "1", "--rounds", "1"
    )
    assert set(result["episodes_per_min"]) == {"1", "2"}
    assert all(rate > 0 for rate in result["episodes_per_min"].values())
    assert result["same_results"] == {"1": True, "2": True}


def test_bench_without_names_runs_every_script_that_runs_as_it_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rt1-sim bench` alone ran train_memory, which requires --source, so it always failed: it runs only
    the scripts that take --json and need no argument, and says which it skipped and why."""
    ran = []

    def measured(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        ran.append(Path(cmd[1]).stem)
        return subprocess.CompletedProcess(cmd, 0, stdout='{"ratio": 2.0}\n', stderr="")

    monkeypatch.setattr(bench.subprocess, "run", measured)
    assert cli.main(["bench"]) == 0
    printed = capsys.readouterr().out
    assert {"train_memory", "contact_sheet"}.isdisjoint(ran) and ran == bench.default_names()
    for name in ran:
        source = (BENCHMARKS / f"{name}.py").read_text()
        assert '"--json"' in source and "required=True" not in source, name
    assert "train_memory: skipped (needs --source DATASET" in printed and "contact_sheet: skipped" in printed
    ran.clear()
    assert cli.main(["bench", "train_memory", "--arg=--source", "--arg=/data"]) == 0  # named: it runs
    assert ran == ["train_memory"]


def test_grounding_probe_sees_the_expert_go_to_the_named_object() -> None:
    args = ["--policy", "scripted", "--policy", "random", "--episodes", "3", "--steps", "40"]
    result = run_json("grounding_probe.py", *args, "--option", "num_distractors=[1,1]")
    assert result["episodes"] == 3 and result["options"] == ["num_distractors=[1,1]"]
    expert, floor = result["policies"]
    assert expert["policy"] == "scripted" and floor["policy"] == "random"
    # Two objects a scene: the expert reaches the named one first in every episode; chance is half of those.
    assert expert["first"]["target"] == expert["reached"] == 3 and expert["chance"] == 1.5
    assert expert["target_first_over_chance"] == 2.0
    assert floor["first"]["target"] <= floor["reached"] <= 3
