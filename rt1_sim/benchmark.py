"""`rt1-sim benchmark`: one policy over the multi-task generalization splits, as a family x split table.

The suites live in `eval_configs/multitask/`: one EvalConfig per split (`seen.json`,
`heldout_paraphrases.json`, ...) and a manifest, `manifest.json`, that lists the splits in table order, the
families, the episodes per cell, how far apart the families' seed blocks are and which (split, family) cells
do not apply (a drawer has no colour to hold out). Cell (split, family) is the split's suite with
`env_options.task = family` (the manifest's `family_option`) and its own seed block `seed_start +
index(family) * family_seed_stride`, so every cell of every policy meets the same scenes and any two runs can
be compared pair by pair (`rt1-sim compare`).

Each cell is an ordinary `rt1-sim eval` run folder (`<out>/<split>/<family>/results.json`, `episodes.csv`),
plus two example episodes re-run with video into `<out>/examples/<split>/<family>/` (the lowest-seed success
and failure; runs are seed-exact, so the re-run reproduces the episode). At the end `benchmark.md` (the
table), `report.html` (a summary first, the bar chart with Wilson whiskers, the table with each cell's example
videos, which are separate files under examples/ with a PNG poster each) and,
last, `benchmark.json` (every cell) are written atomically.

`--out` follows the output-folder rule of every command (rt1_sim.outputs): a new or empty folder, or the
unfinished benchmark of the same settings (policy, its checkpoint, suites, episodes per cell), which the
run resumes: `benchmark_settings.json`, written first, says what a folder holds, and a folder without
`benchmark.json` is unfinished. The resumed run reuses every cell whose config, checkpoint and seeds match, so
a killed benchmark continues where it stopped. Anything else is refused unless `--overwrite`, which replaces
a benchmark's own files and never removes others. One run at a time writes into a folder (its lock).
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from rt1_sim.checkpoint import MODEL_KEYS, load_checkpoint
from rt1_sim.config import MULTITASK_ENV_ID, BenchmarkConfig, EvalConfig
from rt1_sim.config_loader import (
    Shorthand,
    add_override_argument,
    config_to_dict,
    load_config,
    shorthand_overrides,
)
from rt1_sim.env_options import checked_env
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.eval import evaluate, resolve_policy
from rt1_sim.eval.harness import DEFAULT_ENVS_PER_WORKER
from rt1_sim.eval.results import sha256
from rt1_sim.eval.stats import rate_block
from rt1_sim.eval.video import write_poster
from rt1_sim.files import atomic_write_text
from rt1_sim.outputs import check_unlocked, check_writable, lock_folder, make_folder, prepare_folder
from rt1_sim.pool import WorkerDied
from rt1_sim.resources import EVAL_CONFIGS, bundled_checkpoint, find_config, resource_path
from rt1_sim.run_layout import (
    BENCHMARK_FILE,
    BENCHMARK_SETTINGS_FILE,
    EXAMPLES_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    TABLE_FILE,
)

log = logging.getLogger(__name__)

SUITES_DIR = resource_path(EVAL_CONFIGS, "multitask")
MANIFEST_FILE = "manifest.json"
# What a run writes into --out besides one folder per split: what --overwrite may replace.
OUT_FILES = (BENCHMARK_SETTINGS_FILE, BENCHMARK_FILE, TABLE_FILE, REPORT_FILE, EXAMPLES_DIR)
# The settings that make two runs the same benchmark (a folder of other settings is never resumed).
SETTING_KEYS = ("policy", "checkpoint_sha256", "suites", "episodes_per_cell")
# What else decides the cells (a --config or --set may change them): compared where the folder records them.
CELL_KEYS = ("config", "splits", "families", "family_option", "family_seed_stride", "not_applicable")
BUNDLED_MULTITASK = bundled_checkpoint(MULTITASK_ENV_ID)


@dataclass(frozen=True)
class Cell:
    """One (split, family) evaluation: an EvalConfig and the folder it writes, relative to the benchmark's."""

    split: str
    family: str
    config: EvalConfig | None  # None: the split does not apply to this family

    @property
    def folder(self) -> Path:
        return Path(self.split) / self.family


def manifest_path(suites: Path) -> Path:
    """The benchmark config of `suites`: the folder's manifest.json, or a config file (the split suites are
    the files beside it)."""
    suites = Path(suites)
    return suites if suites.is_file() else suites / MANIFEST_FILE


def load_manifest(suites: Path, overrides: Sequence[str | tuple[str, str]] = ()) -> BenchmarkConfig:
    """The benchmark config (`manifest_path(suites)`) with `overrides` applied, read by the one config loader:
    unknown keys, wrong types and inconsistent values are a ConfigError naming the file or the override."""
    if not Path(suites).exists():
        raise ConfigError(
            f"{suites}: does not exist; give the folder of the split suites and {MANIFEST_FILE}"
        )
    path = manifest_path(suites)
    if not path.is_file():
        raise ConfigError(f"{path}: no benchmark manifest in {suites}")
    return load_config(BenchmarkConfig, path, overrides)


def plan_cells(suites: Path, manifest: BenchmarkConfig, policy: str) -> list[Cell]:
    """Every (split, family) cell in table order, each with its own seed block and `policy` (the manifest's,
    resolved)."""
    folder = manifest_path(suites).parent
    cells = []
    for split in manifest.splits:
        suite_file = folder / f"{split}.json"
        if not suite_file.is_file():
            raise ConfigError(
                f"{suite_file}: the manifest lists split {split!r} but its suite file is missing"
            )
        suite = load_config(EvalConfig, suite_file)
        for index, family in enumerate(manifest.families):
            if family in manifest.not_applicable.get(split, ()):
                cells.append(Cell(split, family, None))
                continue
            config = dataclasses.replace(
                suite,
                name=f"{split}/{family}",
                episodes=manifest.episodes_per_cell,
                seed_start=suite.seed_start + index * manifest.family_seed_stride,
                env_options={**suite.env_options, manifest.family_option: family},
                policy=dataclasses.replace(suite.policy, name=policy),
            )
            cells.append(Cell(split, family, config))
    return cells


def check_cells(suites: Path, cells: list[Cell]) -> None:
    """Make every applicable cell's env once (and reset it), so a bad option in any suite is one ConfigError
    naming its file before the first cell runs or anything is written."""
    for cell in cells:
        if cell.config is not None:
            source = str(manifest_path(suites).parent / f"{cell.split}.json")
            checked_env(cell.config.env_id, cell.config.env_options, source, prefix="env_options.").close()


def resolve_benchmark_policy(name: str) -> str:
    """`auto` is the bundled multi-task RT-1 (an error where that file is missing: a benchmark of the scripted
    expert under the RT-1's name would mislead); scripted, random and checkpoint paths pass through."""
    if name != "auto":
        return name
    if not BUNDLED_MULTITASK.is_file():
        raise ConfigError(
            f"--policy auto: no bundled multi-task checkpoint at {BUNDLED_MULTITASK}; "
            "pass --policy scripted, random or the path of an RT-1 checkpoint"
        )
    return str(BUNDLED_MULTITASK)


# ---------------------------------------------------------------- running cells
def _reusable(results_file: Path, config: EvalConfig, checkpoint_sha256: str | None) -> dict[str, Any] | None:
    """The cell's results.json if this very cell wrote it (same config, checkpoint and seeds), else None."""
    try:
        results = json.loads(results_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    seeds = [row.get("seed") for row in results.get("per_episode", [])]
    same = (
        results.get("config") == config_to_dict(config)
        and results.get("policy", {}).get("checkpoint_sha256") == checkpoint_sha256
        and seeds == list(config.seeds)
    )
    return results if same else None


def _example(out: Path, cell: Cell, row: dict[str, Any]) -> str:
    """Re-run one episode with video (seed-exact, and told what the cell told it, so it reproduces `row`);
    returns the video's path. A language ablation's instruction depends on the cell's other seeds
    ("shuffled"), so the re-run is given the cell's instruction for this seed rather than recomputing it."""
    seed = row["seed"]
    config = cell.config
    folder = out / EXAMPLES_DIR / cell.folder / f"seed_{seed}"
    one = dataclasses.replace(config, episodes=1, seed_start=seed)
    told = {seed: row.get("policy_instruction", "")} if config.policy.instruction != "given" else None
    existing = _reusable(folder / RESULTS_FILE, one, _checkpoint_sha(config))
    if existing and existing["per_episode"][0].get("policy_instruction") != row.get("policy_instruction"):
        existing = None  # written by a version that re-ran a shuffled episode with another instruction
    results = (
        existing or evaluate(one, folder, video="all", progress=False, overwrite=True, told=told).results
    )
    again = results["per_episode"][0]
    if (again["success"], again["steps"], again.get("policy_instruction")) != (
        row["success"],
        row["steps"],
        row.get("policy_instruction"),
    ):
        raise RuntimeError(
            f"{config.name} seed {seed}: the re-run with video ended differently "
            f"(success {again['success']}, {again['steps']} steps, told {again.get('policy_instruction')!r} "
            f"vs {row['success']}, {row['steps']}, told {row.get('policy_instruction')!r})"
        )
    return (folder / again["video"]).relative_to(out).as_posix()


def _checkpoint_sha(config: EvalConfig) -> str | None:
    choice = resolve_policy(config.policy.name, config.env_id)
    return sha256(choice.checkpoint) if choice.checkpoint is not None else None


def run_cell(
    out: Path, cell: Cell, workers: int, examples: bool = True, envs_per_worker: int = 1
) -> dict[str, Any]:
    """Evaluate one cell (or reuse its finished results) and return its entry of benchmark.json."""
    entry: dict[str, Any] = {"split": cell.split, "family": cell.family}
    if cell.config is None:
        return {**entry, "status": "not_applicable"}
    cell_dir = out / cell.folder
    results = _reusable(cell_dir / RESULTS_FILE, cell.config, _checkpoint_sha(cell.config))
    reused = results is not None
    if results is None:
        results = evaluate(
            cell.config,
            cell_dir,
            workers,
            video="none",
            progress=False,
            overwrite=True,
            envs_per_worker=envs_per_worker,
        ).results
    rows = results["per_episode"]
    entry.update(
        status="reused" if reused else "done",
        **rate_block(results["successes"], results["episodes"]),
        seeds=[cell.config.seed_start, cell.config.seed_start + cell.config.episodes - 1],
        results=str(cell.folder / RESULTS_FILE),
        mean_steps=results["mean_steps"],
    )
    entry["examples"] = {}
    if examples:
        for label, wanted in (("success", True), ("failure", False)):
            row = next((r for r in rows if bool(r["success"]) == wanted), None)
            entry["examples"][label] = _example(out, cell, row) if row else None
            if row:
                write_poster(out / entry["examples"][label])
    return entry


def pooled(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Successes and episodes summed over cells, with its Wilson interval (None if no cell applies)."""
    done = [e for e in entries if "episodes" in e]
    if not done:
        return None
    return rate_block(sum(e["successes"] for e in done), sum(e["episodes"] for e in done))


# ---------------------------------------------------------------- the table and the page
def _pct(block: dict[str, Any] | None) -> str:
    if block is None:
        return "n/a"
    return f"{block['success_rate']:.0%} [{block['ci95_low']:.0%}, {block['ci95_high']:.0%}]"


def table_markdown(summary: dict[str, Any]) -> str:
    """Rows = families and their pooled mean, columns = splits; each entry "rate [Wilson 95% interval]"."""
    splits, families = summary["splits"], summary["families"]
    by_key = {(c["split"], c["family"]): c for c in summary["cells"]}
    caption = (
        f"Policy `{summary['policy']['label']}`: success per family and split, Wilson 95% interval in "
        "brackets, "
        f"{summary['episodes_per_cell']} episodes per cell."
    )
    lines = [
        caption,
        "",
        "| family | " + " | ".join(splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    for family in families:
        cells = [by_key[(s, family)] for s in splits]
        lines.append(
            f"| {family} | " + " | ".join(_pct(c if "episodes" in c else None) for c in cells) + " |"
        )
    means = [_pct(summary["per_split"][s]) for s in splits]
    lines.append("| **all** | " + " | ".join(f"**{m}**" for m in means) + " |")
    notes = summary.get("notes", {})
    if notes:
        lines += [""] + [f"- `{s}`: {notes[s]}" for s in splits if s in notes]
    return "\n".join(lines) + "\n"


def _bar_chart_svg(summary: dict[str, Any]) -> str:
    """Grouped bars (one group per family, one bar per split) with Wilson whiskers, as inline SVG."""
    splits, families = summary["splits"], summary["families"]
    by_key = {(c["split"], c["family"]): c for c in summary["cells"]}
    bar, gap, height, top, left = 12, 18, 220, 20, 40
    group = bar * len(splits) + gap
    width = left + group * len(families) + 160
    palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]

    def y(rate: float) -> float:  # a rate in [0, 1] -> its pixel row
        return top + height * (1.0 - rate)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 40}">']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{width - 160}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick:.0%}</text>'
        )
    for i, family in enumerate(families):
        x0 = left + i * group + gap / 2
        parts.append(
            f'<text x="{x0 + bar * len(splits) / 2:.1f}" y="{top + height + 14}" font-size="11" '
            f'text-anchor="middle">{html.escape(family)}</text>'
        )
        for j, split in enumerate(splits):
            cell = by_key[(split, family)]
            if "episodes" not in cell:
                continue
            x = x0 + j * bar
            colour = palette[j % len(palette)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y(cell["success_rate"]):.1f}" width="{bar - 2}" '
                f'height="{height * cell["success_rate"]:.1f}" fill="{colour}">'
                f"<title>{html.escape(split)} / {html.escape(family)}: {_pct(cell)}</title></rect>"
                f'<line x1="{x + (bar - 2) / 2:.1f}" x2="{x + (bar - 2) / 2:.1f}" '
                f'y1="{y(cell["ci95_low"]):.1f}" '
                f'y2="{y(cell["ci95_high"]):.1f}" stroke="#222"/>'
            )
    for j, split in enumerate(splits):
        ly = top + 14 * j
        parts.append(
            f'<rect x="{width - 150}" y="{ly}" width="10" height="10" fill="{palette[j % len(palette)]}"/>'
            f'<text x="{width - 135}" y="{ly + 9}" font-size="11">{html.escape(split)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _rate_and_count(block: dict[str, Any] | None) -> str:
    """ "rate [interval]" and "k/n" of a cell or pooled block, for the page."""
    if block is None:
        return "n/a"
    return f"<b>{_pct(block)}</b> {block['successes']}/{block['episodes']}"


def _seed_of(video: str) -> str:
    """The seed in an example video's name (`.../seed_<N>.mp4`)."""
    return PurePosixPath(video).stem.removeprefix("seed_")


def _example_html(label: str, path: str) -> str:
    """A labelled link and a video showing its first frame (the PNG poster next to it) until played."""
    poster = PurePosixPath(path).with_suffix(".png").as_posix()
    return (
        f'<div>{label}: <a href="{html.escape(path)}">seed {_seed_of(path)}</a><br>'
        f'<video src="{html.escape(path)}" poster="{html.escape(poster)}" controls muted preload="metadata" '
        'width="160"></video></div>'
    )


def report_html(summary: dict[str, Any]) -> str:
    """One page: a summary first (every split pooled over its families, with k/n, and all cells pooled), the
    chart, then the family x split table with each cell's two example videos. The videos and their PNG
    posters are separate files under examples/, linked relative to the page (keep the folder together)."""
    splits, families = summary["splits"], summary["families"]
    by_key = {(c["split"], c["family"]): c for c in summary["cells"]}
    head = "".join(f"<th>{html.escape(s)}</th>" for s in splits)
    rows = []
    for family in families:
        tds = []
        for split in splits:
            cell = by_key[(split, family)]
            if "episodes" not in cell:
                tds.append('<td class="na">n/a</td>')
                continue
            videos = "".join(
                _example_html(label, path) for label, path in cell.get("examples", {}).items() if path
            )
            tds.append(
                f'<td id="cell-{html.escape(split)}-{html.escape(family)}">'
                f"{_rate_and_count(cell)}{videos}</td>"
            )
        rows.append(f"<tr><th>{html.escape(family)}</th>{''.join(tds)}</tr>")
    means = "".join(f"<td>{_rate_and_count(summary['per_split'][s])}</td>" for s in splits)
    pooled_rows = "".join(
        f"<tr><th>{html.escape(s)}</th><td>{_rate_and_count(summary['per_split'][s])}</td></tr>"
        for s in splits
    )
    everything = pooled(summary["cells"])
    notes = "".join(
        f"<li><code>{html.escape(s)}</code>: {html.escape(n)}</li>"
        for s, n in summary.get("notes", {}).items()
    )
    policy = summary["policy"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rt1-sim benchmark: {html.escape(policy["label"])}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:100%}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:12px}}td.na{{color:#999}}
.wide{{overflow-x:auto;max-width:100%}}video{{max-width:100%;height:auto;background:#eee}}
svg{{max-width:none}}</style>
</head><body>
<h1>rt1-sim benchmark</h1>
<p>Policy <code>{html.escape(policy["label"])}</code>
(checkpoint sha256 {policy["checkpoint_sha256"] or "none"}),
{summary["episodes_per_cell"]} episodes per cell; success with its Wilson 95% interval, and
successes/episodes.</p>
<h2>Summary</h2>
<table class="summary" id="summary">
<tr><th>split (pooled over families)</th><th>success</th></tr>{pooled_rows}
<tr><th>all cells</th><td>{_rate_and_count(everything)}</td></tr></table>
<div class="chart wide">{_bar_chart_svg(summary)}</div>
<h2>Per family and split</h2>
<p>Example videos (the lowest-seed success and failure of each cell) and their first-frame posters are
separate files under <code>examples/</code>, linked from this page: keep the folder together.</p>
<div class="wide"><table id="cells"><tr><th>family</th>{head}</tr>{"".join(rows)}<tr><th>all</th>{means}</tr>
</table></div>
<ul>{notes}</ul>
</body></html>
"""


# ---------------------------------------------------------------- the output folder
def _read_settings(path: Path) -> dict[str, Any] | None:
    """A benchmark_settings.json (or a finished run's benchmark.json) as {SETTING_KEYS..., splits}; None if
    the file is missing, unreadable or not one rt1-sim wrote (it is then a file of someone else's)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("policy"), dict):  # benchmark.json: the policy block of the summary
        data = {**data, "policy": data["policy"].get("name"), **_sha_of(data["policy"])}
    if not all(k in data for k in SETTING_KEYS) or not isinstance(data.get("splits", []), list):
        return None
    return data


def _sha_of(policy: dict[str, Any]) -> dict[str, Any]:
    return {"checkpoint_sha256": policy["checkpoint_sha256"]} if "checkpoint_sha256" in policy else {}


def check_out(out: Path, settings: dict[str, Any], overwrite: bool) -> tuple[list[Path], bool]:
    """What --overwrite removes from `out`, and whether `out` holds the unfinished benchmark of `settings` to
    resume; reads only. A folder is a benchmark's when its settings file (or benchmark.json) is one rt1-sim
    wrote; only then may --overwrite replace its files (the splits it names), and never anything else."""
    check_writable(out, "--out")
    saved = _read_settings(out / BENCHMARK_SETTINGS_FILE)
    finished = _read_settings(out / BENCHMARK_FILE)
    mine = saved or finished
    if mine is not None and not overwrite:
        compared = [*SETTING_KEYS, *(k for k in CELL_KEYS if k in mine)]
        diff = {k: (mine.get(k), settings[k]) for k in compared if mine.get(k) != settings[k]}
        if diff:
            details = ", ".join(f"{k}: {old!r} there vs {new!r} now" for k, (old, new) in diff.items())
            raise OutputError(
                f"--out {out}: holds a benchmark of other settings ({details}); choose a new folder, or pass "
                "--overwrite to replace it"
            )
        if finished is not None:
            raise OutputError(
                f"--out {out}: holds a finished benchmark of these settings ({BENCHMARK_FILE}, "
                f"{TABLE_FILE}); choose a new folder, or pass --overwrite to run it again"
            )
        return [], True
    if mine is None:  # not a benchmark's folder: any file in it is someone else's, even with --overwrite
        return prepare_folder(out, "--out", (), overwrite=True), False
    splits = {str(s) for m in (saved, finished) if m is not None for s in m.get("splits", [])}
    return prepare_folder(out, "--out", {*OUT_FILES, *settings["splits"], *splits}, overwrite), False


# ---------------------------------------------------------------- the run
def run_benchmark(
    policy: str | None,
    out: Path,
    suites: Path = SUITES_DIR,
    episodes: int | None = None,
    workers: int = 1,
    progress: bool = True,
    examples: bool = True,
    overwrite: bool = False,
    envs_per_worker: int = DEFAULT_ENVS_PER_WORKER,
    overrides: Sequence[str | tuple[str, str]] = (),
) -> dict[str, Any]:
    """Run every cell of the benchmark config `suites` (a suites folder or its manifest file) with
    `overrides` applied, then `policy` and `episodes` (None: the config's), then write benchmark.md,
    report.html and benchmark.json into `out`; `workers` processes of `envs_per_worker` envs each run a
    cell's episodes. `out` must be new or empty, or hold the unfinished benchmark of the same settings
    (resumed), unless `overwrite`. Every input and the folder are checked before anything is written; the
    folder is locked for the run."""
    out = Path(out)
    given = list(overrides)
    if policy is not None:
        given.append((f"policy {policy}", f"policy={json.dumps(policy)}"))
    if episodes is not None:
        given.append((f"episodes {episodes}", f"episodes_per_cell={json.dumps(episodes)}"))
    manifest = load_manifest(suites, given)
    policy = resolve_benchmark_policy(manifest.policy)
    episodes = manifest.episodes_per_cell
    choice = resolve_policy(policy, MULTITASK_ENV_ID)  # not "auto": resolve_benchmark_policy named a file
    if choice.checkpoint is not None:
        load_checkpoint(choice.checkpoint, required=MODEL_KEYS)  # a missing or foreign file: one line
    cells = plan_cells(suites, manifest, policy)
    check_cells(suites, cells)
    settings = {
        "policy": policy,
        "checkpoint_sha256": _checkpoint_sha(next(c.config for c in cells if c.config)),
        "suites": str(manifest_path(suites).parent.resolve()),
        "episodes_per_cell": episodes,
        "config": manifest_path(suites).name,
        **{k: v for k, v in config_to_dict(manifest).items() if k in CELL_KEYS},
    }
    check_unlocked(out, "--out")  # another benchmark writing there: refused with its PID
    check_out(out, settings, overwrite)  # reads only: refused before the folder is created
    with lock_folder(out, "--out"):  # one benchmark at a time in `out`, until this one ends
        remove, resuming = check_out(out, settings, overwrite)  # again: another run may have ended meanwhile
        make_folder(out, "--out", remove)
        if resuming:
            log.info("--out %s: resuming its unfinished benchmark of the same settings", out)
        else:
            atomic_write_text(out / BENCHMARK_SETTINGS_FILE, json.dumps(settings, indent=1) + "\n")
        entries = []
        bar = tqdm(cells, unit="cell", desc="benchmark", disable=not progress, mininterval=0.5)
        for cell in bar:
            bar.set_postfix_str(f"{cell.split}/{cell.family}", refresh=True)
            try:
                entries.append(run_cell(out, cell, workers, examples, envs_per_worker))
            except WorkerDied as e:  # true: the same command resumes the folder, finished cells reused
                advice = f"the finished cells in {out} are kept: re-run the same command to continue"
                raise e.advice(advice) from None
        summary = {
            "policy": {
                "name": policy,
                "kind": choice.kind,
                "label": choice.label,
                "checkpoint_sha256": settings["checkpoint_sha256"],
            },
            "suites": settings["suites"],
            **{k: settings[k] for k in CELL_KEYS},
            "episodes_per_cell": episodes,
            "notes": manifest.notes,
            "per_split": {s: pooled([e for e in entries if e["split"] == s]) for s in manifest.splits},
            "cells": entries,
        }
        atomic_write_text(out / TABLE_FILE, table_markdown(summary))
        atomic_write_text(out / REPORT_FILE, report_html(summary))
        atomic_write_text(out / BENCHMARK_FILE, json.dumps(summary, indent=1) + "\n")  # last: finished
    return summary


# ---------------------------------------------------------------- command line
SHORTHANDS = (  # the options that stand for one BenchmarkConfig key each
    Shorthand("policy", "policy"),
    Shorthand("episodes_per_cell", "episodes_per_cell"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        type=Path,
        help="benchmark config JSON (BenchmarkConfig: splits, families, episodes_per_cell, seed layout, "
        "policy); the split suites are the <split>.json files beside it (default: "
        f"{SUITES_DIR / MANIFEST_FILE})",
    )
    where.add_argument(
        "--suites", type=Path, help=f"a suites folder: the same as --config SUITES/{MANIFEST_FILE}"
    )
    add_override_argument(parser, "episodes_per_cell=10, 'splits=[\"seen\"]'")
    shorthand = parser.add_argument_group("shorthands", "each is the same as --set of the key it names")
    shorthand.add_argument(
        "--policy",
        help="scripted | random | PATH.pt (an RT-1 checkpoint) | auto (the config's default): the bundled "
        f"multi-task RT-1 checkpoint {BUNDLED_MULTITASK.name}; where that file is missing, auto stops with "
        "an error before anything is written (it does not fall back to the scripted expert as eval's auto "
        "does) (--set policy=...)",
    )
    shorthand.add_argument(
        "--episodes-per-cell",
        type=int,
        help="episodes per family x split cell (--set episodes_per_cell=N; default: the config's)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel env processes; does not change results"
    )
    parser.add_argument(
        "--envs-per-worker",
        type=int,
        default=DEFAULT_ENVS_PER_WORKER,
        help="envs each worker steps together (RT-1: one batched forward; default "
        f"{DEFAULT_ENVS_PER_WORKER}); does not change results",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder, new or empty (default: runs/benchmark/<policy>); the same command resumes its "
        "unfinished benchmark",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the benchmark --out holds (finished, or of other settings) instead of refusing",
    )
    parser.add_argument("--no-examples", action="store_true", help="skip the two example videos per cell")


def suites_from_args(args: argparse.Namespace) -> Path:
    """The benchmark config the options name: --config (a file), --suites (a folder) or the shipped one."""
    if args.config is not None:
        config = find_config(args.config)  # eval_configs/multitask/NAME: the shipped file from any folder
        if not config.is_file():
            what = "does not exist" if not config.exists() else "is a folder; give the config file"
            raise ConfigError(f"--config {args.config}: {what}")
        return config
    if args.suites is not None:
        if not args.suites.is_dir():
            what = "does not exist" if not args.suites.exists() else "is a file"
            raise ConfigError(
                f"--suites {args.suites}: {what}; give the folder of the split suites and {MANIFEST_FILE}"
            )
        return args.suites
    return SUITES_DIR


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.envs_per_worker < 1:
        raise ConfigError(f"--envs-per-worker must be >= 1, got {args.envs_per_worker}")
    suites = suites_from_args(args)
    overrides = [*args.overrides, *shorthand_overrides(args, SHORTHANDS)]
    policy = load_manifest(suites, overrides).policy
    out = args.out or Path("runs") / "benchmark" / Path(policy).stem
    summary = run_benchmark(
        None,
        out,
        suites,
        None,
        args.workers,
        examples=not args.no_examples,
        envs_per_worker=args.envs_per_worker,
        overwrite=args.overwrite,
        overrides=overrides,
    )
    print(table_markdown(summary))
    print(f"wrote {out / BENCHMARK_FILE}, {out / TABLE_FILE} and {out / REPORT_FILE}")
    return 0
