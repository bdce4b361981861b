"""`python -m sweepd.cli`: the same as the `sweepd` console script."""

from sweepd.cli import main

main()
