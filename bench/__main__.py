"""Run every benchmark module of ``bench/`` in turn: ``python -m bench [NAME ...]``.

Each module (``bench_*.py``) runs in its own process with its default arguments and writes
its section of ``bench/RESULTS.md``, replacing its previous run. Names given on the command
line (``load``, ``layers``...) restrict the run to those modules. Exits non-zero when any
module fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    modules = sorted(p.stem for p in here.glob("bench_*.py"))
    wanted = {f"bench_{name.removeprefix('bench_')}" for name in sys.argv[1:]}
    unknown = wanted - set(modules)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    failed = []
    for module in modules:
        if wanted and module not in wanted:
            continue
        print(f"== bench.{module}", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{module}"], cwd=here.parent)
        if done.returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
