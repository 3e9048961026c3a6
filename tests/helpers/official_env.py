"""The official (Rust-based) icechunk package, in a private virtualenv, and
runners that execute one scenario script under either implementation.

The environment lives in ``<repo root>/.cache/official-icechunk-2.3.0/``.
It is built on first use (``python -m venv`` + ``pip install``) and reused
afterwards.  A marker file, written only after the install succeeded and the
packages imported, tells a finished environment from a half-made one; a
half-made one is deleted and rebuilt.  An exclusive ``fcntl`` lock on a file
next to it keeps parallel pytest workers from building it twice at once.

Environment variables:

``ICECHUNK_INTEROP_OPTIONAL=1``
    If the official environment cannot be built (for instance without
    network access), skip the interop tests instead of failing them.
``ICECHUNK_INTEROP_SELFTEST=1``
    Make :func:`run_ours` use the official interpreter too.  This validates
    the harness itself (scenarios, dump, comparison) before our engine works.
``ICECHUNK_INTEROP_TIMEOUT``
    Seconds a scenario may run (default 900).
``ICECHUNK_INTEROP_CACHE``
    Directory to keep the environment in instead of ``<repo root>/.cache``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # tests/helpers/official_env.py
SRC_DIR = REPO_ROOT / "src"
SCENARIO_DIR = REPO_ROOT / "tests" / "interop" / "scenarios"

ICECHUNK_VERSION = "2.3.0"
ZARR_VERSION = "3.4.2"
REQUIREMENTS = (f"icechunk=={ICECHUNK_VERSION}", f"zarr=={ZARR_VERSION}", "numpy")

CACHE_DIR = Path(os.environ.get("ICECHUNK_INTEROP_CACHE") or REPO_ROOT / ".cache")
VENV_DIR = CACHE_DIR / f"official-icechunk-{ICECHUNK_VERSION}"
LOCK_FILE = CACHE_DIR / f"official-icechunk-{ICECHUNK_VERSION}.lock"
MARKER_NAME = ".interop-env-complete.json"

BUILD_TIMEOUT = 1800
MIN_PYTHON = (3, 12)


class OfficialEnvError(RuntimeError):
    """The official environment could not be built."""


class ScenarioError(AssertionError):
    """A scenario script exited with an error or printed no valid JSON."""


def optional() -> bool:
    return os.environ.get("ICECHUNK_INTEROP_OPTIONAL", "") == "1"


def selftest() -> bool:
    return os.environ.get("ICECHUNK_INTEROP_SELFTEST", "") == "1"


def _timeout() -> float:
    return float(os.environ.get("ICECHUNK_INTEROP_TIMEOUT", "900"))


# --------------------------------------------------------------------------
# building the official environment
# --------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _python_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_clean_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def base_interpreter() -> str:
    """A Python >= 3.12 to create the virtualenv from."""
    if sys.version_info[:2] >= MIN_PYTHON:
        return sys.executable
    for name in ("python3.14", "python3.13", "python3.12", "python3", "python"):
        exe = shutil.which(name)
        if exe:
            version = _python_version(exe)
            if version is not None and version >= MIN_PYTHON:
                return exe
    raise OfficialEnvError(
        f"no Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} found "
        f"(running {sys.version.split()[0]}, nothing suitable on PATH)"
    )


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment minus everything that would leak our code or
    our virtualenv into another interpreter."""
    env = dict(os.environ)
    for key in (
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "VIRTUAL_ENV",
        "PYTHONEXECUTABLE",
        "__PYVENV_LAUNCHER__",
        "PIP_REQUIRE_VIRTUALENV",
        "PIP_USER",
        "PIP_TARGET",
        "PIP_PREFIX",
    ):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if extra:
        env.update(extra)
    return env


def _marker_expected() -> dict:
    return {"requirements": list(REQUIREMENTS)}


def _is_complete(venv: Path) -> bool:
    marker = venv / MARKER_NAME
    if not marker.is_file() or not _venv_python(venv).exists():
        return False
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return data.get("requirements") == list(REQUIREMENTS)


def _run_step(cmd: list[str], log: list[str], **kwargs) -> None:
    log.append("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            env=_clean_env(),
            **kwargs,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.append(f"failed to run: {exc!r}")
        raise OfficialEnvError("\n".join(log)) from exc
    log.append(proc.stdout[-4000:])
    log.append(proc.stderr[-4000:])
    if proc.returncode != 0:
        log.append(f"exit status {proc.returncode}")
        raise OfficialEnvError("\n".join(log))


def _build(venv: Path) -> None:
    base = base_interpreter()
    log: list[str] = [f"building {venv} from {base}"]
    start = time.monotonic()
    try:
        _run_step([base, "-m", "venv", str(venv)], log)
    except OfficialEnvError:
        # Some distributions ship Python without ensurepip; fall back to a
        # pip-less venv filled by the base interpreter's pip (pip >= 22.3).
        shutil.rmtree(venv, ignore_errors=True)
        _run_step([base, "-m", "venv", "--without-pip", str(venv)], log)
        py = str(_venv_python(venv))
        _run_step([base, "-m", "pip", "--python", py, "install", *REQUIREMENTS], log)
    else:
        py = str(_venv_python(venv))
        _run_step([py, "-m", "pip", "install", "--quiet", *REQUIREMENTS], log)
    probe = (
        "import json, icechunk, zarr, numpy; "
        "print(json.dumps({'icechunk': icechunk.__version__, "
        "'zarr': zarr.__version__, 'numpy': numpy.__version__, "
        "'icechunk_file': icechunk.__file__}))"
    )
    log.append("$ probe imports")
    proc = subprocess.run(
        [py, "-I", "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )
    if proc.returncode != 0:
        log.append(proc.stderr[-4000:])
        raise OfficialEnvError("\n".join(log))
    versions = json.loads(proc.stdout.strip().splitlines()[-1])
    if versions["icechunk"] != ICECHUNK_VERSION or versions["zarr"] != ZARR_VERSION:
        log.append(f"unexpected versions installed: {versions}")
        raise OfficialEnvError("\n".join(log))
    marker = dict(_marker_expected())
    marker.update(versions=versions, base=base, build_seconds=round(time.monotonic() - start, 1))
    tmp = venv / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2))
    os.replace(tmp, venv / MARKER_NAME)


@contextlib.contextmanager
def _locked():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


_official_python: Path | None = None
_official_error: OfficialEnvError | None = None


def ensure_official_python() -> Path:
    """Path of the official interpreter; builds the environment if needed.

    Raises :class:`OfficialEnvError` when it cannot be built (the error is
    remembered, so one pytest session tries only once).
    """
    global _official_python, _official_error
    if _official_python is not None:
        return _official_python
    if _official_error is not None:
        raise _official_error
    try:
        if not _is_complete(VENV_DIR):
            with _locked():
                if not _is_complete(VENV_DIR):  # another worker may have built it
                    if VENV_DIR.exists():
                        shutil.rmtree(VENV_DIR)
                    try:
                        _build(VENV_DIR)
                    except BaseException:
                        shutil.rmtree(VENV_DIR, ignore_errors=True)
                        raise
    except OfficialEnvError as exc:
        _official_error = exc
        raise
    except OSError as exc:
        _official_error = OfficialEnvError(f"building {VENV_DIR} failed: {exc!r}")
        raise _official_error from exc
    _official_python = _venv_python(VENV_DIR)
    return _official_python


def official_python_or_skip() -> Path:
    """:func:`ensure_official_python` for a test, which is skipped instead when the
    environment cannot be built and ``ICECHUNK_INTEROP_OPTIONAL=1``."""
    try:
        return ensure_official_python()
    except OfficialEnvError as exc:
        if not optional():
            raise
        import pytest

        pytest.skip(f"official icechunk environment unavailable: {exc}")


def build_info() -> dict:
    """Contents of the marker file of the (finished) official environment."""
    return json.loads((VENV_DIR / MARKER_NAME).read_text())


# --------------------------------------------------------------------------
# running scenarios
# --------------------------------------------------------------------------


def _script_command(script: str | os.PathLike) -> list[str]:
    """``[path]`` for a script file, ``["-c", source]`` for source text.

    A bare file name such as ``"dump_repo.py"`` is looked up in the
    scenarios directory.
    """
    if isinstance(script, os.PathLike):
        path = Path(script)
        if not path.is_file():
            raise FileNotFoundError(path)
        return [str(path)]
    if "\n" not in script and script.endswith(".py"):
        path = Path(script)
        if not path.is_absolute() and not path.exists():
            path = SCENARIO_DIR / script
        if not path.is_file():
            raise FileNotFoundError(script)
        return [str(path.resolve())]
    return ["-c", script]


def _parse_json(stdout: str) -> dict:
    text = stdout.strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        pass
    # tolerate chatter before the JSON document: take the last line
    last = text.splitlines()[-1]
    return json.loads(last)


def run_script(
    python: str | os.PathLike, script, *args, env: dict[str, str], isolated: bool, label: str
) -> dict:
    __tracebackhide__ = True  # pytest: show the message, not the frame
    cmd = [str(python)]
    if isolated:
        cmd.append("-I")
    cmd += _script_command(script)
    cmd += [str(a) for a in args]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=_timeout(),
            cwd=str(REPO_ROOT),
            encoding="utf-8",
            errors="replace",
        )
    except subprocess.TimeoutExpired as exc:
        raise ScenarioError(
            f"[{label}] timed out after {exc.timeout}s: {' '.join(cmd[:3])} ...\n"
            f"--- stderr ---\n{exc.stderr}"
        ) from None
    if proc.returncode != 0:
        raise ScenarioError(
            f"[{label}] exited with status {proc.returncode}: "
            f"{' '.join(cmd if cmd[1] != '-c' else cmd[:2] + ['<source>'] + cmd[3:])}\n"
            f"--- stderr ---\n{proc.stderr[-20000:]}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-3000:]}"
        )
    try:
        return _parse_json(proc.stdout)
    except ValueError:
        raise ScenarioError(
            f"[{label}] printed no JSON\n--- stdout (tail) ---\n{proc.stdout[-3000:]}\n"
            f"--- stderr ---\n{proc.stderr[-5000:]}"
        ) from None


def run_official(script, *args) -> dict:
    """Run ``script`` (a path, a scenario file name or source text) with the
    official icechunk and return the JSON it printed."""
    __tracebackhide__ = True  # pytest: show the message, not the frame
    python = ensure_official_python()
    return run_script(python, script, *args, env=_clean_env(), isolated=True, label="official")


def ours_env() -> dict[str, str]:
    env = _clean_env()
    env["PYTHONPATH"] = str(SRC_DIR)
    return env


def run_ours(script, *args) -> dict:
    """Run ``script`` with our pure-Python icechunk (``src/`` first on the
    path, current interpreter) and return the JSON it printed.

    With ``ICECHUNK_INTEROP_SELFTEST=1`` the official interpreter is used
    instead (to test the harness)."""
    __tracebackhide__ = True  # pytest: show the message, not the frame
    if selftest():
        python = ensure_official_python()
        return run_script(
            python, script, *args, env=_clean_env(), isolated=True, label="ours(selftest=official)"
        )
    return run_script(sys.executable, script, *args, env=ours_env(), isolated=False, label="ours")


WHICH_ICECHUNK = (
    "import json, icechunk, zarr, numpy; "
    "print(json.dumps({'file': icechunk.__file__, "
    "'version': getattr(icechunk, '__version__', None), "
    "'zarr': zarr.__version__, 'numpy': numpy.__version__}))"
)


def check_ours_is_ours() -> dict:
    """Make sure ``run_ours`` imports the icechunk from ``src/`` and not an
    installed copy of the official package."""
    info = run_ours(WHICH_ICECHUNK)
    if not selftest():
        found = Path(info["file"]).resolve()
        if SRC_DIR.resolve() not in found.parents:
            raise AssertionError(f"run_ours imported icechunk from {found}, not from {SRC_DIR}")
    return info
