"""TravelPlanner: the LLM-free planner without and with procedural memory (official scores).

    python bench/travelplanner.py [--out bench/results/travelplanner] [--seed 0] [--n-train 45]
                                  [--n-test 45] [--embedder minilm|hashing]

The same run as ``memp travelplanner bench``, a preset of the suite runner (``memp.experiments``).
Needs the official data (``$MEMP_TRAVELPLANNER_DATA`` or ../shared/travelplanner).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from memp.cli.main import app  # noqa: E402

if __name__ == "__main__":
    app(["travelplanner", "bench", *sys.argv[1:]], prog_name="bench/travelplanner.py")
