"""The former entry point, kept for existing command lines:

python bench/pipeline_bench.py [flags]   ==   python bench/run.py --scenario throughput [flags]
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--scenario", "throughput", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("run.py")), run_name="__main__")
