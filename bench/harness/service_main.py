"""One PixSim service as its own process, as `make run` starts it (`python -m pixsim_<name>`), plus a
MongoDB command counter the bench reads (see `mongo_stats`).

    python bench/harness/service_main.py dispatcher [STATS_FILE]

Without STATS_FILE it is exactly `python -m pixsim_<name>`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for `harness`

from pymongo import monitoring

from harness.mongo_stats import MongoStats, dump_on_signal

if __name__ == "__main__":
    name = sys.argv[1]
    if len(sys.argv) > 2:
        stats = MongoStats()
        monitoring.register(stats)  # before the service creates its client
        dump_on_signal(stats, Path(sys.argv[2]))
    importlib.import_module(f"pixsim_{name}.__main__").main()
