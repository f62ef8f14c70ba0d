"""`make bench`: run every benchmarks/bench_*.py and print its table.

Each module has ``main() -> str`` returning a plain-text table. Speed claims live here, measured
side by side with their peer in one run (never in timed tests): these machines are noisy.
Run one: ``python benchmarks/run.py data``.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    mods = sorted(HERE.glob("bench_*.py"))
    if argv:
        mods = [m for m in mods if any(a in m.stem for a in argv)]
    if not mods:
        print("no benchmark matches", argv)
        return 1
    for path in mods:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        t0 = time.perf_counter()
        print(f"== {path.stem} ==", flush=True)
        print(mod.main(), flush=True)
        print(f"({time.perf_counter() - t0:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
