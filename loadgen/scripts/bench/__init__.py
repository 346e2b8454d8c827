"""The side-by-side benchmark harness (`loadgen/scripts/compare.py`): servers, machine probe,
cells run with redis-benchmark and rewind-loadgen, memory/disk/restore figures, plots, report."""
