"""Search quality: run the shared benchmark harness (../shared/bench/run.py) against this checkout's sweepd.

Usage: python benchmarks/search_quality.py [--seeds 5] [--problems all] [--max-trials 40] [--workers 4]
(any run.py option; --searcher defaults to sweepd). Prints run.py's table: normalized Pareto
hypervolume per problem (1.0 = near-optimal front), trials, trials over the cost cap, suggest seconds
and trials stopped early. The three regimes of issue 11:
  --curves --budget-scale 0.15 --max-trials 2000 --seeds 3 --problems all   (curves, Searcher.report)
  --max-trials 40 --seeds 5 --problems all                                  (a short sweep)
  --seeds 3 --problems all                                                  (300 trials)
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO.parent / "shared" / "bench" / "run.py"


def main(argv: list[str]) -> int:
    """Run the harness in a subprocess with this repo first on PYTHONPATH; return its exit code."""
    if not HARNESS.is_file():
        print(f"error: benchmark harness not found at {HARNESS} (expected ../shared next to the repo)",
              file=sys.stderr)
        return 2
    if not any(a == "--searcher" or a.startswith("--searcher=") for a in argv):
        argv = ["--searcher", "sweepd", *argv]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.call([sys.executable, str(HARNESS), *argv], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
