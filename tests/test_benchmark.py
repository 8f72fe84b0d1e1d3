"""rt1-sim benchmark: cells, language ablations, resume, the table and a report page whose links all exist.

The machinery is exercised on PandaPick-v0 with the cube colour standing in for the family (fast, and
independent of any one task); the shipped multi-task suites are checked against the manifest separately.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rt1_sim import benchmark as bm
from rt1_sim import cli
from rt1_sim.compare import compare
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.eval.policy_choice import substitute_instructions
from rt1_sim.outputs import LOCK_FILE


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


@pytest.fixture()
def suites(tmp_path: Path) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    base = {"episodes": 50, "max_steps": 14, "env_options": {}}
    _write(folder / "seen.json", {**base, "name": "seen", "seed_start": 7000})
    _write(
        folder / "far.json",
        {**base, "name": "far", "seed_start": 8000, "env_options": {"x_range": [0.6, 0.7]}},
    )
    _write(
        folder / "blank_instruction.json",
        {**base, "name": "blank_instruction", "seed_start": 7000, "policy": {"instruction": "blank"}},
    )
    manifest = {
        "splits": ["seen", "far", "blank_instruction"],
        "families": ["red", "green"],
        "family_option": "cube_color",
        "episodes_per_cell": 3,
        "family_seed_stride": 100,
        "not_applicable": {"far": ["green"]},
        "notes": {"seen": "new seeds", "far": "cubes further away"},
    }
    _write(folder / bm.MANIFEST_FILE, manifest)
    return folder


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag in ("a", "video") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))
        if tag == "td" and attrs.get("id", "").startswith("cell-"):
            self.cells.append(attrs["id"])


def test_benchmark_writes_every_cell_table_and_a_page_whose_links_exist(suites, tmp_path):
    out = tmp_path / "bench"
    summary = bm.run_benchmark("scripted", out, suites, workers=1, progress=False)
    cells = {(c["split"], c["family"]): c for c in summary["cells"]}
    assert len(cells) == 6 and cells[("far", "green")]["status"] == "not_applicable"
    seen_red = cells[("seen", "red")]
    assert seen_red["episodes"] == 3 and seen_red["seeds"] == [7000, 7002]
    assert cells[("seen", "green")]["seeds"] == [7100, 7102]  # the second family's own seed block
    rows = json.loads((out / "seen" / "green" / "results.json").read_text())["per_episode"]
    assert {r["instruction"] for r in rows} == {"pick up the green cube"}
    blank = json.loads((out / "blank_instruction" / "red" / "results.json").read_text())["per_episode"]
    assert [r["seed"] for r in blank] == [7000, 7001, 7002] and {r["policy_instruction"] for r in blank} == {
        ""
    }
    # Pooled row: successes and episodes summed over the split's applicable cells.
    assert summary["per_split"]["far"]["episodes"] == 3 and summary["per_split"]["seen"]["episodes"] == 6

    table = (out / bm.TABLE_FILE).read_text()
    assert "| red |" in table and "n/a" in table and "**all**" in table
    page = _Links()
    page.feed((out / bm.REPORT_FILE).read_text())
    applicable = [k for k, c in cells.items() if c["status"] != "not_applicable"]
    assert sorted(page.cells) == sorted(f"cell-{s}-{f}" for s, f in applicable)
    examples = [p for c in cells.values() for p in c.get("examples", {}).values() if p]
    assert examples and set(examples) <= set(page.links)
    assert all((out / link).is_file() and (out / link).stat().st_size > 0 for link in page.links)

    # A finished benchmark is not run again into its folder; a killed one (no benchmark.json yet) resumes,
    # reusing every finished cell; other settings are refused unless --overwrite, which runs every cell.
    with pytest.raises(OutputError, match="holds a finished benchmark of these settings"):
        bm.run_benchmark("scripted", out, suites, workers=1, progress=False)
    (out / bm.BENCHMARK_FILE).unlink()
    again = bm.run_benchmark("scripted", out, suites, workers=1, progress=False)
    assert {c["status"] for c in again["cells"]} == {"reused", "not_applicable"}
    assert [c.get("successes") for c in again["cells"]] == [c.get("successes") for c in summary["cells"]]
    with pytest.raises(OutputError, match="other settings \\(episodes_per_cell: 3 there vs 2 now\\)"):
        bm.run_benchmark("scripted", out, suites, episodes=2, workers=1, progress=False, examples=False)
    fewer = bm.run_benchmark(
        "scripted", out, suites, episodes=2, workers=1, progress=False, examples=False, overwrite=True
    )
    assert {c["status"] for c in fewer["cells"]} == {"done", "not_applicable"}
    assert not (out / bm.EXAMPLES_DIR).exists()  # the replaced run's files went with it


def test_random_floor_failure_examples_and_a_paired_comparison(suites, tmp_path):
    summary = bm.run_benchmark("random", tmp_path / "rand", suites, episodes=2, progress=False)
    cell = summary["cells"][0]
    assert cell["successes"] == 0 and cell["examples"]["success"] is None
    assert (tmp_path / "rand" / cell["examples"]["failure"]).is_file()
    bm.run_benchmark("scripted", tmp_path / "expert", suites, episodes=2, progress=False, examples=False)
    report = compare(tmp_path / "rand", tmp_path / "expert")
    suites_compared = sorted({row["suite"] for row in report["cells"]})
    assert suites_compared == [
        "blank_instruction/green",
        "blank_instruction/red",
        "far/red",
        "seen/green",
        "seen/red",
    ]


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_out_is_refused_unless_new_empty_or_its_own_unfinished_run(suites, tmp_path, capsys):
    """A benchmark of other settings is never replaced without --overwrite, and a folder of other files
    (a user's notes, an eval run) never at all; the refusal is one line naming the folder."""
    out = tmp_path / "expert"
    bm.run_benchmark("scripted", out, suites, episodes=1, progress=False, examples=False)
    finished = _listing(out)
    with pytest.raises(OutputError, match=f"--out {out}: holds a benchmark of other settings \\(policy: "):
        bm.run_benchmark("random", out, suites, episodes=1, progress=False, examples=False)
    (out / bm.BENCHMARK_FILE).unlink()  # killed before the end: still a scripted benchmark, never resumed as
    with pytest.raises(OutputError, match="policy: 'scripted' there vs 'random' now"):  # another policy's
        bm.run_benchmark("random", out, suites, episodes=1, progress=False, examples=False)

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("a user's notes")
    evaluated = tmp_path / "eval_run"  # what `rt1-sim eval --out` leaves
    evaluated.mkdir()
    for name in ("results.json", "episodes.csv", "eval.log"):
        (evaluated / name).write_text("{}")
    for folder in (notes, evaluated):
        before = _listing(folder)
        for overwrite in (False, True):
            with pytest.raises(OutputError, match=f"--out {folder}: .*choose a new folder"):
                bm.run_benchmark("random", folder, suites, episodes=1, progress=False, overwrite=overwrite)
        assert _listing(folder) == before  # nothing written
    argv = ["benchmark", "--suites", str(suites), "--policy", "random", "--out", str(notes), "--overwrite"]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"rt1-sim benchmark: error: --out {notes}: ") and len(error.splitlines()) == 1

    # --overwrite replaces a benchmark's own files, and never a file it did not write.
    (out / "notes.txt").write_text("written into the benchmark folder by hand")
    with pytest.raises(OutputError, match=r"does not write here \(notes.txt\)"):
        bm.run_benchmark("random", out, suites, episodes=1, progress=False, examples=False, overwrite=True)
    (out / "notes.txt").unlink()
    assert _listing(out) == {k: v for k, v in finished.items() if k != bm.BENCHMARK_FILE}
    summary = bm.run_benchmark("random", out, suites, episodes=1, progress=False, overwrite=True)
    assert summary["policy"]["name"] == "random" and (out / bm.BENCHMARK_FILE).is_file()


def test_a_second_benchmark_into_a_folder_in_use_is_refused_naming_the_first(suites, tmp_path, folder_holder):
    out = tmp_path / "busy"
    holder = folder_holder(out)  # a benchmark running into `out`
    with pytest.raises(OutputError, match=f"--out {out}: another rt1-sim run \\(PID {holder.pid}\\)"):
        bm.run_benchmark("scripted", out, suites, episodes=1, progress=False, examples=False)
    assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # nothing written
    holder.kill()  # the first run dies: its folder is free (and empty: a new run may start there)
    holder.wait()
    bm.run_benchmark("scripted", out, suites, episodes=1, progress=False, examples=False)
    assert (out / bm.BENCHMARK_FILE).is_file() and not (out / LOCK_FILE).exists()


def test_shuffled_instructions_always_differ_when_they_can():
    own = {1: "a", 2: "a", 3: "b", 4: "c"}
    told = substitute_instructions("shuffled", [1, 2, 3, 4], own)
    assert all(told[s] != own[s] for s in own)
    assert substitute_instructions("shuffled", [1, 2], {1: "a", 2: "a"}) == {1: "a", 2: "a"}  # nothing else
    assert substitute_instructions("blank", [5], {}) == {5: ""}


def test_a_shuffled_cells_example_is_told_what_the_cell_told_that_episode(tmp_path):
    # Instructions differ between seeds here (the cube's colour is drawn per scene), so a shuffled episode is
    # told another seed's instruction, which a one-episode re-run cannot compute on its own.
    folder = tmp_path / "suites"
    folder.mkdir()
    _write(
        folder / "shuffled_instruction.json",
        {
            "name": "shuffled_instruction",
            "seed_start": 7000,
            "max_steps": 14,
            "policy": {"instruction": "shuffled"},
        },
    )
    manifest = {"splits": ["shuffled_instruction"], "families": ["random"], "family_option": "cube_color"}
    _write(folder / bm.MANIFEST_FILE, {**manifest, "episodes_per_cell": 3, "family_seed_stride": 100})
    out = tmp_path / "bench"
    summary = bm.run_benchmark("scripted", out, folder, workers=1, progress=False)
    cell = summary["cells"][0]
    rows = {r["seed"]: r for r in json.loads((out / cell["results"]).read_text())["per_episode"]}
    assert all(r["policy_instruction"] != r["instruction"] for r in rows.values())
    example = out / cell["examples"]["success"]
    rerun = json.loads((example.parent.parent / "results.json").read_text())
    again = rerun["per_episode"][0]
    assert again["policy_instruction"] == rows[again["seed"]]["policy_instruction"] != again["instruction"]
    assert rerun["policy"]["told"] == {str(again["seed"]): again["policy_instruction"]}  # on record


def test_bad_manifest_and_options_are_one_clear_error(suites, tmp_path):
    manifest = json.loads((suites / bm.MANIFEST_FILE).read_text())
    _write(suites / bm.MANIFEST_FILE, {**manifest, "splitz": []})
    with pytest.raises(ConfigError, match="splitz"):
        bm.run_benchmark("scripted", tmp_path / "x", suites, progress=False)
    _write(suites / bm.MANIFEST_FILE, {**manifest, "splits": ["seen", "far", "missing"]})
    with pytest.raises(ConfigError, match="missing.json"):
        bm.run_benchmark("scripted", tmp_path / "x", suites, progress=False)
    _write(suites / bm.MANIFEST_FILE, manifest)
    far = json.loads((suites / "far.json").read_text())
    _write(suites / "far.json", {**far, "env_options": {"x_rnage": [0.6, 0.7]}})
    with pytest.raises(ConfigError, match=r"far\.json: unknown key 'env_options\.x_rnage'"):
        bm.run_benchmark("scripted", tmp_path / "x", suites, progress=False)
    _write(suites / "far.json", far)
    with pytest.raises(ConfigError, match="family_seed_stride"):
        bm.run_benchmark("scripted", tmp_path / "x", suites, episodes=101, progress=False)
    assert not (tmp_path / "x").exists()  # nothing written for a refused run


def test_shipped_multitask_suites_match_their_manifest():
    manifest = bm.load_manifest(bm.SUITES_DIR)
    assert manifest.splits[:2] == ("seen", "heldout_paraphrases") and manifest.episodes_per_cell >= 50
    starts = {}
    for split in manifest.splits:
        suite = json.loads((bm.SUITES_DIR / f"{split}.json").read_text())
        assert suite["name"] == split
        starts[split] = suite["seed_start"]
    # Ablations replay the seen scenes; every other split has its own block, far from collection seeds (0..).
    ablations = {s for s in starts if s.endswith("_instruction")}
    assert {starts[s] for s in ablations} == {starts["seen"]}
    cells = bm.plan_cells(bm.SUITES_DIR, manifest, "scripted")
    assert len(cells) == len(manifest.splits) * len(manifest.families)
    bm.check_cells(bm.SUITES_DIR, cells)  # every cell's env options make a real env
    blocks = sorted(starts[s] for s in starts if s not in ablations)
    span = manifest.family_seed_stride * len(manifest.families)
    assert blocks[0] >= 1_000_000 and all(b - a >= span for a, b in zip(blocks, blocks[1:]))


def test_the_config_is_read_by_the_one_loader_with_its_overrides(suites, tmp_path, capsys):
    """`--config FILE --set KEY=VALUE`: the split suites are the files beside the config; overrides choose
    the splits and the cell size, as `--set` does for every other command."""
    from rt1_sim.cli import main

    config = suites / "two_cells.json"
    manifest = json.loads((suites / bm.MANIFEST_FILE).read_text())
    _write(config, {**manifest, "families": ["red"], "not_applicable": {}})
    out = tmp_path / "b"
    argv = ["benchmark", "--config", str(config), "--set", 'splits=["seen", "far"]', "--policy", "scripted"]
    assert main([*argv, "--episodes-per-cell", "1", "--no-examples", "--out", str(out)]) == 0
    summary = json.loads((out / bm.BENCHMARK_FILE).read_text())
    assert summary["splits"] == ["seen", "far"] and summary["families"] == ["red"]
    assert [(c["split"], c["family"], c["episodes"]) for c in summary["cells"]] == [
        ("seen", "red", 1),
        ("far", "red", 1),
    ]


def test_an_unfinished_benchmark_resumes_only_with_the_cells_it_was_started_with(suites, tmp_path):
    """`--set splits=...` (or another config) changes the cells: a folder started with other cells is
    refused, not resumed; entries of not_applicable for a split left out are ignored."""
    out = tmp_path / "b"
    seen_only = ['splits=["seen"]']  # the manifest's not_applicable names "far", left out here
    summary = bm.run_benchmark(
        "random", out, suites, episodes=1, progress=False, examples=False, overrides=seen_only
    )
    assert [c["split"] for c in summary["cells"]] == ["seen", "seen"]
    (out / bm.BENCHMARK_FILE).unlink()  # as if killed before the end
    with pytest.raises(OutputError, match="other settings.*splits"):
        bm.run_benchmark("random", out, suites, episodes=1, progress=False, examples=False)
    again = bm.run_benchmark(
        "random", out, suites, episodes=1, progress=False, examples=False, overrides=seen_only
    )
    assert [c["status"] for c in again["cells"]] == ["reused", "reused"]  # resumed
    assert [{**c, "status": None} for c in again["cells"]] == [
        {**c, "status": None} for c in summary["cells"]
    ]
