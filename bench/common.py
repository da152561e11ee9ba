"""What every benchmark shares: the machine header of ``bench/RESULTS.md``."""

from __future__ import annotations

import os
import platform
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
