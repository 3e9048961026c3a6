"""The interpreters the benchmarks run under.

* ``ours``: this checkout's ``.venv`` interpreter with ``src/`` first on ``PYTHONPATH``.
* ``official``: a private virtualenv, ``<repo>/.cache/bench-official/``, with the official
  ``icechunk==2.3.0`` and the same versions of zarr, numpy, xarray, dask, distributed, pandas
  ... as the interpreter running the benchmarks (so the only difference is icechunk itself:
  an installed ``distributed``, for one, makes xarray import it on every dask write/read).
* ``zarr``: the ``ours`` interpreter, workloads told to use plain zarr stores.

The virtualenv is built with the helpers of the interop harness
(``tests/helpers/official_env.py``): the same clean environment, base interpreter and
"marker written last" rule, under its own ``fcntl`` lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SRC_DIR = REPO_ROOT / "src"
sys.path.insert(0, str(REPO_ROOT))
from tests.helpers import official_env  # noqa: E402  (tests/helpers/official_env.py)

sys.path.pop(0)

ICECHUNK_VERSION = official_env.ICECHUNK_VERSION
CACHE_DIR = official_env.CACHE_DIR
VENV_DIR = CACHE_DIR / "bench-official"
LOCK_FILE = CACHE_DIR / "bench-official.lock"
MARKER_NAME = ".bench-env-complete.json"

# pinned to what the benchmark runner's interpreter has, so both sides share them
SHARED_PACKAGES = (
    "zarr", "numpy", "numcodecs", "xarray", "dask", "distributed", "pandas", "zstandard",
    "cloudpickle", "toolz", "partd", "fsspec",
)


def requirements() -> list[str]:
    reqs = [f"icechunk=={ICECHUNK_VERSION}"]
    for name in SHARED_PACKAGES:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _complete(venv: Path, reqs: list[str]) -> bool:
    marker = venv / MARKER_NAME
    if not marker.is_file() or not _python(venv).exists():
        return False
    try:
        return json.loads(marker.read_text()).get("requirements") == reqs
    except (OSError, ValueError):
        return False


def _build(venv: Path, reqs: list[str]) -> None:
    base = official_env.base_interpreter()
    log = [f"building {venv} from {base}"]
    start = time.monotonic()
    official_env._run_step([base, "-m", "venv", str(venv)], log)
    py = str(_python(venv))
    official_env._run_step([py, "-m", "pip", "install", "--quiet", *reqs], log)
    probe = (
        "import json, icechunk, zarr, numpy, xarray, dask; "
        "print(json.dumps({'icechunk': icechunk.__version__, 'zarr': zarr.__version__, "
        "'numpy': numpy.__version__, 'xarray': xarray.__version__, 'dask': dask.__version__}))"
    )
    proc = subprocess.run(
        [py, "-c", probe], capture_output=True, text=True, timeout=300, env=official_env._clean_env()
    )
    if proc.returncode != 0:
        raise official_env.OfficialEnvError("\n".join([*log, proc.stderr[-4000:]]))
    versions = json.loads(proc.stdout.strip().splitlines()[-1])
    if versions["icechunk"] != ICECHUNK_VERSION:
        raise official_env.OfficialEnvError(f"unexpected versions installed: {versions}")
    marker = {
        "requirements": reqs,
        "versions": versions,
        "base": base,
        "build_seconds": round(time.monotonic() - start, 1),
    }
    tmp = venv / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2))
    tmp.replace(venv / MARKER_NAME)


@contextlib.contextmanager
def _locked():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def official_python() -> Path:
    """The interpreter of ``.cache/bench-official``; builds it on first use."""
    reqs = requirements()
    if not _complete(VENV_DIR, reqs):
        with _locked():
            if not _complete(VENV_DIR, reqs):
                if VENV_DIR.exists():
                    shutil.rmtree(VENV_DIR)
                print(f"building {VENV_DIR} ({' '.join(reqs)}) ...", file=sys.stderr, flush=True)
                try:
                    _build(VENV_DIR, reqs)
                except BaseException:
                    shutil.rmtree(VENV_DIR, ignore_errors=True)
                    raise
    return _python(VENV_DIR)


def official_env_vars() -> dict[str, str]:
    return official_env._clean_env()


def ours_env_vars(src_dir: Path = SRC_DIR) -> dict[str, str]:
    env = official_env._clean_env()
    env["PYTHONPATH"] = str(src_dir)
    return env


def build_info() -> dict:
    return json.loads((VENV_DIR / MARKER_NAME).read_text())


if __name__ == "__main__":
    print(official_python())
    print(json.dumps(build_info(), indent=2))
