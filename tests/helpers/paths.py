"""Where things are: the repository root and the test data under ``tests/data/``."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS.parent
SRC = REPO_ROOT / "src"

#: data files kept with the tests (see ``tests/data/README.md``)
DATA = TESTS / "data"
#: repositories written by the official icechunk 2.3.0, each with its JSON descriptions
FIXTURES = DATA / "fixtures"
#: the quickstart example, run unchanged by ``tests/integration/test_quickstart.py``
QUICKSTART = DATA / "seed_quickstart.py"
