"""What every benchmark shares: ``bench/RESULTS.md``, its machine header and sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path


def machine_header() -> str:
    """Return the title and machine line that open ``bench/RESULTS.md``."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")),
        "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        "# Benchmark results\n\n"
        f"Machine: {os.cpu_count()} CPU ({model}), {mem_kb / 1024**2:.1f} GiB RAM, "
        f"{platform.platform()}; Python {platform.python_version()}.\n"
    )


RESULTS = Path(__file__).with_name("RESULTS.md")


def topic(heading: str) -> str:
    """Return a section heading without the run's date or source note in parentheses."""
    return re.sub(r"\s*\([^()]*\)\s*$", "", heading.strip())


def record_section(text: str, results: Path = RESULTS) -> None:
    """Put a benchmark's section in ``results``, replacing its previous run.

    ``text`` starts (after blank lines) with a ``## `` heading; the section of the same topic
    (heading without the parenthesised date) is replaced where it stands, else ``text`` is
    appended. A missing file starts with :func:`machine_header`.
    """
    body = text.strip("\n") + "\n"
    new_topic = topic(body.splitlines()[0])
    old = results.read_text(encoding="utf-8") if results.exists() else machine_header()
    parts = re.split(r"(?m)^(?=## )", old)
    for i, part in enumerate(parts[1:], start=1):
        if topic(part.splitlines()[0]) == new_topic:
            parts[i] = body + "\n"
            break
    else:
        parts.append(("\n" if not parts[-1].endswith("\n\n") else "") + body)
    results.write_text("".join(parts).rstrip("\n") + "\n", encoding="utf-8")
