"""Where does our implementation spend its time on one workload? py-spy samples the timed
region of one phase (set-up phases run first, unprofiled) and the samples are summed per
function: self time (the function itself on top of the stack) and total time (anywhere on
the stack), in % of all samples, all threads together (zarr runs the store's coroutines on
its own event-loop thread and the codecs in a thread pool).

    .venv/bin/python benchmarks/hotspots.py c-commit               # one target
    .venv/bin/python benchmarks/hotspots.py a b d --top 25         # several
    .venv/bin/python benchmarks/hotspots.py f-commit --arg=--chunks=1000000
    .venv/bin/python benchmarks/hotspots.py b --impl official      # the official package

py-spy comes from ``.cache/bench-tools/`` (a venv built on first use with ``pip install
py-spy``) or from PATH. Raw samples are kept in ``.cache/bench-profiles/<target>.txt``
(collapsed stacks: feed them to flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import envs

BENCH_DIR = Path(__file__).resolve().parent
WORKLOADS_DIR = BENCH_DIR / "workloads"
TOOLS_VENV = envs.CACHE_DIR / "bench-tools"
OUT_DIR = envs.CACHE_DIR / "bench-profiles"

# target -> (script, [(phase, region or None, args)], storage)
# Sizes are the default ones of `benchmarks/run.py`.
TARGETS: dict[str, tuple[str, list[tuple[str, str | None, list[str]]], str]] = {
    "a": ("bulk.py", [("write", "write", ["--mib", "512"])], "local"),
    "b": ("bulk.py", [("write", None, ["--mib", "512"]), ("read", "read", [])], "local"),
    "c-write": ("refs.py", [("write", "set", ["--chunks", "100000"])], "local"),
    "c-commit": ("refs.py", [("write", "commit", ["--chunks", "100000"])], "local"),
    "c-read": ("refs.py", [("write", None, ["--chunks", "100000"]),
                           ("read", "read", ["--reads", "1000"])], "local"),
    "d": ("commits.py", [("run", "loop", ["--commits", "100"])], "local"),
    "e-write": ("xr_dask.py", [("write", "write", ["--mb", "100"])], "local"),
    "e-read": ("xr_dask.py", [("write", None, ["--mb", "100"]), ("read", "read", [])], "local"),
    "f-commit": ("refs.py", [("write", "commit", ["--chunks", "200000"])], "local"),
    "f-read": ("refs.py", [("write", None, ["--chunks", "200000"]),
                           ("read", "read", ["--reads", "100"])], "local"),
    "g-write": ("bulk.py", [("write", "write", ["--mib", "128"])], "s3"),
    "g-read": ("bulk.py", [("write", None, ["--mib", "128"]), ("read", "read", [])], "s3"),
}


def py_spy() -> str:
    found = shutil.which("py-spy")
    if found:
        return found
    exe = TOOLS_VENV / "bin" / "py-spy"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        subprocess.run([str(TOOLS_VENV / "bin" / "pip"), "install", "--quiet", "py-spy"],
                       check=True, env=envs.official_env_vars())
    return str(exe)


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/src-snapshot/", "/src/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return path


def function_of(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    return f"{m['func']} ({_short(m['file'])})"


def summarise(raw: Path, top: int) -> str:
    selfs: collections.Counter[str] = collections.Counter()
    totals: collections.Counter[str] = collections.Counter()
    n = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        n += k
        funcs = [function_of(f) for f in stack.split(";")]
        selfs[funcs[-1]] += k
        for f in set(funcs):
            totals[f] += k
    if not n:
        return "no samples\n"
    out = [f"{n} samples", "", f"top {top} by self time:", "  self%  total%  function"]
    for f, k in selfs.most_common(top):
        out.append(f"  {100 * k / n:5.1f}  {100 * totals[f] / n:6.1f}  {f}")
    out += ["", f"top {top} by total time (own code and zarr/stdlib entry points):",
            "  total%  self%  function"]
    for f, k in totals.most_common(top * 3)[: top]:
        out.append(f"  {100 * k / n:6.1f}  {100 * selfs[f] / n:5.1f}  {f}")
    return "\n".join(out) + "\n"


def profile(target: str, impl: str, extra: list[str], top: int, idle: bool, gil: bool,
            rate: int) -> str:
    script, phases, storage = TARGETS[target]
    if impl == "official":
        python, env = str(envs.official_python()), envs.official_env_vars()
    else:
        python, env = sys.executable, envs.ours_env_vars()
    spy = py_spy()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    raw = OUT_DIR / f"{target}-{impl}{'-gil' if gil else ''}.txt"
    raw.unlink(missing_ok=True)
    moto = None
    tmp = Path(tempfile.mkdtemp(prefix="icechunk-profile-"))
    try:
        if storage == "s3":
            from s3server import MotoServer

            moto = MotoServer()
            where = ["--storage", "s3", "--s3-endpoint", moto.url, "--path", "profile"]
        else:
            where = ["--path", str(tmp / "repo")]
        for phase, region, args in phases:
            phase_env = dict(env)
            if region is not None:
                phase_env.update(BENCH_PROFILE=region, BENCH_PYSPY=spy, BENCH_PYSPY_OUT=str(raw),
                                 BENCH_PYSPY_RATE=str(rate), BENCH_PYSPY_IDLE="1" if idle else "0",
                                 BENCH_PYSPY_GIL="1" if gil else "0")
            # an extra "--flag value" goes to the phases whose default arguments have --flag
            for flag, value in zip(extra[::2], extra[1::2]):
                if flag in args:
                    i = args.index(flag)
                    args = [*args[:i], flag, value, *args[i + 2:]]
            cmd = [python, str(WORKLOADS_DIR / script), phase, *where, *args]
            proc = subprocess.run(cmd, env=phase_env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            last = proc.stdout.strip().splitlines()[-1]
            print(f"  {phase}: {last[:200]}", file=sys.stderr)
    finally:
        if moto is not None:
            moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return f"== {target} ({impl}) ==\nraw samples: {raw}\n" + summarise(raw, top)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="+", choices=sorted(TARGETS))
    p.add_argument("--impl", choices=("ours", "official"), default="ours")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--rate", type=int, default=500, help="samples per second")
    p.add_argument("--idle", action="store_true", help="count threads that wait, too")
    p.add_argument("--gil", action="store_true",
                   help="only the thread holding the GIL (where Python code itself is slow)")
    p.add_argument("--arg", action="append", default=[],
                   help="extra argument for the profiled phase, e.g. --arg=--chunks=1000000")
    opts = p.parse_args(argv)
    extra = [a for arg in opts.arg for a in arg.split("=", 1)]
    if len(extra) % 2:
        p.error("--arg takes --flag=value")
    for target in opts.targets:
        print(profile(target, opts.impl, extra, opts.top, opts.idle, opts.gil, opts.rate),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
