"""Pipeline-test fixtures: ``models_dir`` and ``make_shot`` from ``pipeline_fixtures``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_fixtures import make_shot, models_dir  # noqa: E402, F401 - fixtures
