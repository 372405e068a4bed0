"""Farm-test fixtures: ``models_dir``, ``make_shot``, ``write_shot`` (tests/pipeline)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from pipeline_fixtures import make_shot, models_dir, write_shot  # noqa: E402, F401 - fixtures
