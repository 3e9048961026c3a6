"""Fixtures for the interop tests (official icechunk <-> ours)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import official_env


def pytest_configure(config):
    registered = [line.split(":")[0].strip() for line in config.getini("markers")]
    if "interop" not in registered:
        config.addinivalue_line(
            "markers",
            "interop: round trips between our icechunk and the official package "
            "(builds a virtualenv with icechunk==2.3.0 on first use)",
        )
    # test_interop.py asks for a long pytest-timeout (the first run builds a
    # virtualenv); register the marker when that plugin is not installed
    if not config.pluginmanager.hasplugin("timeout") and "timeout" not in registered:
        config.addinivalue_line("markers", "timeout(seconds): per-test time limit")


@pytest.fixture(scope="session")
def official_python() -> Path:
    """Interpreter of a virtualenv holding the official icechunk 2.3.0.

    Built under ``<repo>/.cache/official-icechunk-2.3.0/`` on first use.  If
    that fails the tests fail, unless ``ICECHUNK_INTEROP_OPTIONAL=1``.
    """
    try:
        return official_env.ensure_official_python()
    except official_env.OfficialEnvError as exc:
        problem = str(exc)
    if official_env.optional():
        pytest.skip(f"official icechunk environment unavailable: {problem}")
    pytest.fail(
        "could not build the official icechunk environment "
        "(set ICECHUNK_INTEROP_OPTIONAL=1 to skip instead):\n" + problem,
        pytrace=False,
    )


@pytest.fixture(scope="session")
def run_official(official_python):
    """``run_official(script, *args) -> dict`` with the official package."""
    return official_env.run_official


@pytest.fixture(scope="session")
def run_ours(official_python):
    """``run_ours(script, *args) -> dict`` with our package (``src/``).

    Depends on ``official_python`` because every interop test needs both
    sides, and so that the self-test mode has its interpreter."""
    official_env.check_ours_is_ours()
    return official_env.run_ours
