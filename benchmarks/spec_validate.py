"""Time to validate a sweep file with many searched params (what `sweepd validate FILE` does).

The file extends the bundled default sweep and searches N params, each a `[search.train.pN]`
table with a default in `[train]`, so every param's line lookups touch both files of the chain.
Validation must grow linearly with N: the line lookups once rescanned the file per param
(4,000 params took 46 s, 150,000 never finished).

Prints, per size: params, file lines, wall seconds, and microseconds per param.

Usage: python benchmarks/spec_validate.py [--sizes 4000,150000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sweepd.spec import load_spec


def sweep_text(params: int) -> str:
    """A valid sweep file over `params` log-space params."""
    head = ['extends = "default"', 'env_name = "snake"', "", "[sweep]", "max_trials = 3", "", "[train]"]
    defaults = [f"p{i} = 0.01" for i in range(params)]
    tables = [f'\n[search.train.p{i}]\nspace = "log"\nmin = 0.0001\nmax = 1.0\ncenter = 0.01'
              for i in range(params)]
    return "\n".join(head + defaults + tables) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4000,150000", help="comma-separated param counts")
    args = parser.parse_args()
    print(f"{'params':>8} {'lines':>9} {'seconds':>9} {'us/param':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"many_{size}.toml"
            path.write_text(sweep_text(size))
            lines = path.read_text().count("\n")
            start = time.perf_counter()
            spec = load_spec(str(path))
            seconds = time.perf_counter() - start
            assert len(spec.params) >= size
            print(f"{size:>8} {lines:>9} {seconds:>9.2f} {seconds / size * 1e6:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
