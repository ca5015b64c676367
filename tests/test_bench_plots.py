"""The benchmark report's plots: failover_plot writes a PNG, write_markdown embeds it."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import pytest

from bench import _plots
from bench._plots import Plot, failover_plot
from bench._report import Result, write_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_backend_is_non_interactive() -> None:
    assert matplotlib.get_backend().lower() == "agg"


def test_failover_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks"
    plot = failover_plot(
        "failover_demo",
        "Failover, fault to first write on the new primary",
        {
            "SIGKILL": [0.12, 0.15, 0.18, 0.2, 0.31],
            "SIGSTOP": [2.1, 2.4, 2.6, math.inf],
            "half-open": [],
        },
        unit="s",
        target=2.5,
        out_dir=out,
    )
    assert plot.name == "failover_demo"
    assert plot.path == out / "failover_demo.png"
    data = plot.path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
    assert "\n" not in plot.caption
    assert "SIGKILL: n=5, median 0.18 s, p99 0.31 s" in plot.caption
    assert "SIGSTOP: n=4, median 2.50 s, p99 never, 1 never" in plot.caption
    assert "half-open" not in plot.caption
    assert "target 2.5 s" in plot.caption


def test_default_folder_is_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_plots, "OUTPUT_DIR", tmp_path / "plots")
    plot = failover_plot("kill", "SIGKILL", {"SIGKILL": [180.0, 210.0]}, unit="ms")
    assert plot.path == tmp_path / "plots" / "kill.png"
    assert plot.path.read_bytes().startswith(PNG_SIGNATURE)


def test_all_empty_series_say_no_data(tmp_path: Path) -> None:
    plot = failover_plot(
        "nothing", "Failover after SIGSTOP", {"SIGSTOP": [], "cut": [math.nan]}, out_dir=tmp_path
    )
    assert plot.caption == "Failover after SIGSTOP: no data."
    assert plot.path.read_bytes().startswith(PNG_SIGNATURE)
    no_series = failover_plot("none", "Nothing ran", {}, target=1.0, out_dir=tmp_path)
    assert no_series.caption == "Nothing ran: no data."


def test_name_must_be_a_file_stem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file stem"):
        failover_plot("../escape", "x", {"a": [1.0]}, out_dir=tmp_path)


def test_write_markdown_embeds_the_plot_after_the_table(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    plot = failover_plot(
        "scs_failover_sigkill",
        "Failover after SIGKILL",
        {"SIGKILL": [150.0, 180.0, 240.0]},
        unit="ms",
        target=250.0,
        out_dir=docs / "benchmarks",
    )
    result = Result("Failover after SIGKILL, median", 180.0, "ms", "<= 250 ms", True)
    path = docs / "benchmarks.md"
    write_markdown(path, [("bench_scs", "What it measures.", [plot, result])])
    text = path.read_text(encoding="utf-8")
    image = f"![{plot.caption}](benchmarks/scs_failover_sigkill.png)"
    assert image in text
    lines = text.splitlines()
    at = lines.index(image)
    assert lines[at + 2] == plot.caption
    assert text.index("| Failover after SIGKILL, median |") < text.index(image)
    assert "Targets met: 1; missed: 0." in text


def test_plot_is_a_frozen_record(tmp_path: Path) -> None:
    plot = Plot("x", "caption", tmp_path / "x.png")
    with pytest.raises(AttributeError):
        plot.name = "y"  # type: ignore[misc]
