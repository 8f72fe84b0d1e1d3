"""The benchmark's report.html: a summary with k/n before any video, posters so videos are never black boxes,
links that name their seed, and a table that scrolls instead of being cut off on a narrow screen."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from rt1_sim import benchmark as bm

SUITES = Path(__file__).resolve().parent.parent / "eval_configs" / "multitask"


class _Page(HTMLParser):
    """The tags of the page in order, with their attributes, and each link's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None


def test_report_shows_summary_first_posters_seeds_and_a_scrolling_table(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    shutil.copy(SUITES / "seen.json", suites)
    manifest = {
        "splits": ["seen"],
        "families": ["pick", "push"],
        "episodes_per_cell": 1,
        "family_seed_stride": 100,
    }
    (suites / bm.MANIFEST_FILE).write_text(json.dumps(manifest))
    out = tmp_path / "bench"
    summary = bm.run_benchmark("scripted", out, suites, workers=1, progress=False)
    text = (out / bm.REPORT_FILE).read_text()
    page = _Page()
    page.feed(text)

    videos = [attrs for tag, attrs in page.tags if tag == "video"]
    assert len(videos) == 2  # each family's success (the expert has no failure)
    for video in videos:
        assert video["preload"] == "metadata"
        poster = out / str(video["poster"])
        assert poster.suffix == ".png" and poster.is_file() and poster.read_bytes()[:4] == b"\x89PNG"
        assert poster.with_suffix(".mp4") == out / str(video["src"])
    for href, label in page.links:
        seed = re.fullmatch(r"seed_(\d+)\.mp4", Path(href).name)
        assert seed and label == f"seed {seed.group(1)}", (href, label)

    # The pooled summary, with successes/episodes, comes before the first video.
    assert text.index('id="summary"') < text.index("<video")
    pooled = summary["per_split"]["seen"]
    assert f"{pooled['successes']}/{pooled['episodes']}" in text[: text.index("<video")]
    # The wide table sits in a box that scrolls sideways.
    assert re.search(r'<div class="wide"><table id="cells">', text)
    assert ".wide{overflow-x:auto;max-width:100%}" in text
