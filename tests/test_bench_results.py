"""bench/common.record_section: one current section per benchmark in RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from bench.common import record_section


def test_a_new_run_replaces_its_section_where_it_stands_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\nMachine: test.\n\n"
        "## Loading (2026-11-22 18:00 UTC)\n\nold load\n\n"
        "## GET /locate under load (bench/bench_locate.py)\n\nold locate\n"
    )
    record_section("\n## Loading (2026-11-22 20:00 UTC)\n\nnew load\n", results)
    record_section("## Batch import\n\nbatch\n", results)
    text = results.read_text()
    assert "old load" not in text
    assert text.index("new load") < text.index("old locate") < text.index("batch")
    assert text.count("## ") == 3
    assert text.startswith("# Benchmark results\n\nMachine: test.\n\n## Loading")


def test_a_missing_file_starts_with_the_machine_header(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    record_section("## Batch import\n\nbatch\n", results)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nMachine: ")
    assert text.endswith("## Batch import\n\nbatch\n")
