"""python -m casebook.examples.seeds OUT: write the three seed incidents as case directories."""

import sys
from pathlib import Path

from casebook.examples.seeds import SCENARIOS

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m casebook.examples.seeds OUT")
    out = Path(sys.argv[1])
    for name, scenario in SCENARIOS.items():
        print(f"wrote {scenario.generate(out / name)}")
