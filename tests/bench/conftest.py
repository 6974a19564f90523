"""bench/ is a folder of scripts run as ``python bench`` (its folder first on the import
path, so its modules import each other by plain names); its tests import them the same way."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
