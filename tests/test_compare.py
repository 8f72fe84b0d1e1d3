"""`rt1-sim compare`: exact McNemar p-values, per-cell verdicts for eval and benchmark folders, two real eval
runs compared end to end, and one clear error for folders that cannot be paired."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from rt1_sim import cli
from rt1_sim.compare import COMPARE_JSON, COMPARE_MD, CompareError, compare, mcnemar_exact_p, to_markdown
from rt1_sim.eval.stats import wilson_interval

EPISODES, SEED_START = 6, 1_000_000


# ---------------------------------------------------------------- the test
@pytest.mark.parametrize(
    "b, c, p",
    [
        (0, 6, 0.03125),  # 2 * (1/2)^6
        (6, 0, 0.03125),
        (0, 5, 0.0625),
        (1, 9, 2 * (1 + 10) / 2**10),
        (2, 8, 2 * (1 + 10 + 45) / 2**10),
        (3, 3, 1.0),  # b = c: no evidence either way
        (10, 10, 1.0),
        (0, 0, 1.0),  # no discordant pair
        (0, 1, 1.0),
    ],
)
def test_exact_mcnemar_matches_hand_computed_values(b: int, c: int, p: float) -> None:
    assert mcnemar_exact_p(b, c) == pytest.approx(p, rel=1e-12)


def test_exact_mcnemar_stays_exact_for_large_counts() -> None:
    # 2 * P(X <= 400), X ~ Bin(1000, 1/2): far below what floats of (1/2)^1000 terms could sum naively.
    expected = 2 * sum(math.comb(1000, k) for k in range(401)) / 2**1000
    assert mcnemar_exact_p(400, 600) == pytest.approx(expected, rel=1e-12)
    assert 0 < mcnemar_exact_p(400, 600) < 1e-9


# ---------------------------------------------------------------- synthetic folders
def write_results(folder: Path, successes: list[bool], seed_start: int = SEED_START, **extra: Any) -> Path:
    """A results.json as `rt1-sim eval` writes it (the keys compare reads), rows optionally with a family."""
    families = extra.pop("families", None)
    rows = [{"seed": seed_start + i, "success": s, "steps": 10} for i, s in enumerate(successes)]
    if families is not None:
        for row, family in zip(rows, families):
            row["family"] = family
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "config": {"name": extra.get("name", "default"), "env_options": extra.get("env_options", {})},
        "policy": {"label": extra.get("label", "p")},
        "per_episode": rows,
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_one_cell_per_eval_folder_with_rates_counts_and_verdict(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a", [True] * 8 + [False] * 2, label="rt1")
    b = write_results(tmp_path / "b", [False] * 8 + [True, False], label="random")
    report = compare(a, b)
    (cell,) = report["cells"]
    assert cell["cell"] == "default" and cell["episodes"] == 10
    assert (cell["only_a"], cell["only_b"]) == (8, 1)
    assert cell["p_value"] == pytest.approx(2 * (1 + 9) / 2**9)
    assert cell["verdict"] == "A better"
    assert cell["difference"] == pytest.approx(0.1 - 0.8)
    assert (cell["a"]["ci95_low"], cell["a"]["ci95_high"]) == wilson_interval(8, 10)
    assert compare(b, a)["cells"][0]["verdict"] == "B better"
    assert compare(a, b, alpha=0.01)["cells"][0]["verdict"] == "no significant difference"
    assert report["a"]["policy"] == ["rt1"] and report["b"]["policy"] == ["random"]


def test_benchmark_folders_give_a_cell_per_suite_and_family(tmp_path: Path) -> None:
    families = ["pick", "place"] * 3
    for side, wins in (("a", [True] * 6), ("b", [True, False] * 3)):
        write_results(tmp_path / side / "seen", wins, families=families, name="seen")
        write_results(tmp_path / side / "unseen_colours", wins[:4], seed_start=5, name="unseen_colours")
        (tmp_path / side / "benchmark.json").write_text("{}")
    report = compare(tmp_path / "a", tmp_path / "b")
    cells = {c["cell"]: c for c in report["cells"]}
    assert list(cells) == ["seen/pick", "seen/place", "unseen_colours"]
    assert (cells["seen/pick"]["only_a"], cells["seen/place"]["only_a"]) == (0, 3)
    assert cells["seen/place"]["episodes"] == 3 and cells["unseen_colours"]["episodes"] == 4
    markdown = to_markdown(report)
    assert markdown.count("\n| seen/") == 2 and "| unseen_colours | 4 |" in markdown


# ---------------------------------------------------------------- refusals
def test_different_seeds_are_refused_naming_both_folders_and_a_seed(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a", [True] * 4)
    b = write_results(tmp_path / "b", [True] * 4, seed_start=SEED_START + 2)
    with pytest.raises(
        CompareError, match=f"{a} \\(A\\) and {b} \\(B\\) were not run on the same seeds"
    ) as e:
        compare(a, b)
    assert f"seed {SEED_START} is only in A" in str(e.value)
    fewer = write_results(tmp_path / "fewer", [True] * 3)
    with pytest.raises(CompareError, match=f"seed {SEED_START + 3} is only in B"):
        compare(fewer, a)


def test_missing_or_corrupt_results_and_unmatched_cells_are_refused(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a", [True] * 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CompareError, match=f"{empty}: no results.json"):
        compare(a, empty)
    with pytest.raises(CompareError, match="no such folder"):
        compare(a, tmp_path / "nowhere")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "results.json").write_text('{"per_episode": [')
    with pytest.raises(CompareError, match=f"{corrupt / 'results.json'}: not a readable results file"):
        compare(a, corrupt)
    (corrupt / "results.json").write_text('{"per_episode": [{"seed": 1}]}')
    with pytest.raises(CompareError, match="lacks an integer seed or a true/false success"):
        compare(corrupt, a)

    bench = tmp_path / "bench"
    write_results(bench / "default", [True] * 4)
    with pytest.raises(CompareError, match=r"do not hold the same suites/families: only in A \['default'\]"):
        compare(a, bench)
    other = write_results(tmp_path / "other_scenes", [True] * 4, env_options={"num_distractors": 3})
    with pytest.raises(CompareError, match="different env_options"):
        compare(a, other)
    with pytest.raises(CompareError, match="alpha"):
        compare(a, a, alpha=1.5)


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scripted expert and the random policy, each on the default suite's first 6 seeds."""
    root = tmp_path_factory.mktemp("evals")
    for policy in ("scripted", "random"):
        args = ["--policy", policy, "--episodes", str(EPISODES), "--workers", "1", "--video", "none"]
        assert cli.main(["eval", *args, "--out", str(root / policy)]) == 0
    return {"scripted": root / "scripted", "random": root / "random"}


def test_two_real_eval_runs_compared_from_the_command_line(
    evals: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(evals["scripted"]), str(evals["random"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / COMPARE_JSON).read_text())
    (cell,) = report["cells"]
    assert cell["cell"] == "default" and cell["episodes"] == EPISODES
    assert (cell["a"]["successes"], cell["b"]["successes"]) == (EPISODES, 0)
    assert (cell["only_a"], cell["only_b"]) == (EPISODES, 0)
    assert cell["p_value"] == pytest.approx(2 / 2**EPISODES) and cell["verdict"] == "A better"
    assert report["a"]["policy"] == ["scripted"] and report["b"]["policy"] == ["random"]
    assert (out / COMPARE_MD).read_text() == printed == to_markdown(report)
    row = "| default | 6 | 100.0% (61.0%-100.0%) | 0.0% (0.0%-39.0%) | -100.0% | 6 | 0 | 0.03125 | A better |"
    assert row in printed
    assert sorted(p.name for p in out.iterdir()) == [COMPARE_JSON, COMPARE_MD]  # no temp file left


def test_the_command_line_refuses_other_seeds_in_one_line(
    evals: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shifted = tmp_path / "shifted"
    shutil.copytree(evals["random"], shifted)
    results = json.loads((shifted / "results.json").read_text())
    results["per_episode"][0]["seed"] = 7
    (shifted / "results.json").write_text(json.dumps(results))
    assert cli.main(["compare", str(evals["scripted"]), str(shifted), "--out", str(tmp_path / "cmp")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rt1-sim compare: error: ") and len(error.splitlines()) == 1
    assert str(evals["scripted"]) in error and str(shifted) in error and "seed 1000000 is only in A" in error
    assert not (tmp_path / "cmp").exists()  # nothing written


def test_out_follows_the_output_folder_rule(
    evals: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out never replaces a user's file, never writes into an eval folder (whose later `eval --overwrite`
    would then refuse it), and replaces an earlier comparison only with --overwrite."""
    a, b = str(evals["scripted"]), str(evals["random"])
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / COMPARE_MD).write_text("my own notes")
    evaluated = tmp_path / "eval_run"
    shutil.copytree(evals["random"], evaluated)
    for folder in (mine, evaluated):
        before = sorted(p.name for p in folder.iterdir())
        for overwrite in ([], ["--overwrite"]):
            assert cli.main(["compare", a, b, "--out", str(folder), *overwrite]) == 2
            error = capsys.readouterr().err.strip()
            assert (
                error.startswith(f"rt1-sim compare: error: --out {folder}: ") and len(error.splitlines()) == 1
            )
        assert sorted(p.name for p in folder.iterdir()) == before
    assert (mine / COMPARE_MD).read_text() == "my own notes"
    again = ["eval", "--policy", "random", "--episodes", "1", "--workers", "1", "--video", "none"]
    assert cli.main([*again, "--out", str(evaluated), "--overwrite"]) == 0

    out = tmp_path / "cmp"
    assert cli.main(["compare", a, b, "--out", str(out)]) == 0
    assert cli.main(["compare", b, a, "--out", str(out)]) == 2  # an earlier comparison: not replaced silently
    assert "already holds compare.json, compare.md" in capsys.readouterr().err
    assert json.loads((out / COMPARE_JSON).read_text())["a"]["folder"] == a
    assert cli.main(["compare", b, a, "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / COMPARE_JSON).read_text())["a"]["folder"] == b
    assert sorted(p.name for p in out.iterdir()) == [COMPARE_JSON, COMPARE_MD]
