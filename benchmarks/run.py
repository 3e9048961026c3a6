"""Side-by-side benchmarks: our pure-Python icechunk against the official icechunk 2.3.0 (and
plain zarr stores on the bulk workloads), in one run.

    .venv/bin/python benchmarks/run.py                 # every workload, 3 repeats (make bench)
    .venv/bin/python benchmarks/run.py --quick         # small sizes (make bench-quick)
    .venv/bin/python benchmarks/run.py --only c,d --repeats 5 --tiny-chunks 50000

Each workload phase runs in a fresh subprocess (``benchmarks/workloads/*.py``), for each
implementation in turn -- ours, official, zarr, ours, official, zarr, ... -- so that a
machine busy with other work slows every side alike. The runner prints a markdown table of
the medians with the ratio ours/official and the issue's target, and writes every raw
measurement to ``benchmarks/results.json``.

Interpreters: ours is this interpreter (run it from ``.venv``) with ``src/`` first on
``PYTHONPATH``; official is ``.cache/bench-official/bin/python`` (built on first use by
``benchmarks/envs.py``: icechunk 2.3.0 with the same zarr, numpy, xarray, dask as here);
zarr is this interpreter again, with the workloads told to use zarr's own stores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs

BENCH_DIR = Path(__file__).resolve().parent
WORKLOADS_DIR = BENCH_DIR / "workloads"
REPO_ROOT = BENCH_DIR.parent
IMPLS = ("ours", "official", "zarr")


# ---------------------------------------------------------------------------- configuration


DEFAULT_SIZES = {
    "bulk_mib": 512.0,      # a, b
    "chunk_mib": 1.0,
    "tiny_chunks": 100_000,  # c
    "tiny_reads": 1000,
    "commits": 100,          # d
    "xr_mb": 100.0,          # e
    "scale_refs": 200_000,   # f (the figure is 1,000,000: --scale-refs 1000000)
    "scale_reads": 100,
    "s3_mib": 128.0,         # g
}
QUICK_SIZES = {
    "bulk_mib": 32.0,
    "chunk_mib": 1.0,
    "tiny_chunks": 10_000,
    "tiny_reads": 200,
    "commits": 20,
    "xr_mb": 10.0,
    "scale_refs": 20_000,
    "scale_reads": 20,
    "s3_mib": 16.0,
}


@dataclass
class Group:
    """One workload script run as a sequence of phases, each in a fresh process."""

    name: str
    letters: str
    script: str
    impls: tuple[str, ...]
    phases: tuple[str, ...]
    storage: str = "local"
    args: Any = None  # (sizes, phase) -> list[str]


@dataclass
class Row:
    """One line of the table: a metric of one phase of one group."""

    letter: str
    label: str
    group: str
    phase: str
    metric: str
    unit: str  # "s", "ms", "MiB"
    target: float | None
    rate: str | None = None  # metric shown alongside (MB/s)


def groups() -> list[Group]:
    def bulk(mib_key: str):
        def args(sz: dict, phase: str) -> list[str]:
            return ["--mib", sz[mib_key], "--chunk-mib", sz["chunk_mib"]] if phase == "write" else []
        return args

    return [
        Group("bulk", "ab", "bulk.py", IMPLS, ("write", "read"), args=bulk("bulk_mib")),
        Group("tiny", "c", "refs.py", ("ours", "official"), ("write", "read"),
              args=lambda sz, ph: ["--chunks", sz["tiny_chunks"]] if ph == "write"
              else ["--reads", sz["tiny_reads"]]),
        Group("commits", "d", "commits.py", ("ours", "official"), ("run",),
              args=lambda sz, ph: ["--commits", sz["commits"]]),
        Group("xarray", "e", "xr_dask.py", IMPLS, ("write", "read"),
              args=lambda sz, ph: ["--mb", sz["xr_mb"]] if ph == "write" else []),
        Group("scale", "f", "refs.py", ("ours", "official"), ("write", "read"),
              args=lambda sz, ph: ["--chunks", sz["scale_refs"]] if ph == "write"
              else ["--reads", sz["scale_reads"]]),
        Group("scale-virtual", "f", "refs.py", ("ours", "official"), ("write", "read"),
              args=lambda sz, ph: ["--virtual"] + (["--chunks", sz["scale_refs"]] if ph == "write"
                                                   else ["--reads", sz["scale_reads"]])),
        Group("bulk-s3", "g", "bulk.py", IMPLS, ("write", "read"), storage="s3",
              args=bulk("s3_mib")),
    ]


def rows(sz: dict) -> list[Row]:
    n = lambda v: f"{int(v):,}"  # noqa: E731
    mib = lambda v: f"{v:g} MiB"  # noqa: E731
    return [
        Row("a", f"bulk write {mib(sz['bulk_mib'])} + commit", "bulk", "write", "total_s", "s", 1.0, "mb_per_s"),
        Row("b", "bulk read, fresh read-only session", "bulk", "read", "total_s", "s", 0.6, "mb_per_s"),
        Row("x", "import icechunk, after zarr (info)", "bulk", "read", "import_s", "s", None),
        Row("c", f"write {n(sz['tiny_chunks'])} tiny chunks (store.set; info)", "tiny", "write", "write_s", "s", None),
        Row("c", f"commit of {n(sz['tiny_chunks'])} chunks", "tiny", "write", "commit_s", "s", 1.5),
        Row("c", f"fresh open + {n(sz['tiny_reads'])} random reads", "tiny", "read", "total_s", "s", 1.0),
        Row("d", f"{n(sz['commits'])} small commits: per cycle (session+write+commit)", "commits", "run", "cycle_ms", "ms", 1.5),
        Row("d", "... the commit call alone", "commits", "run", "commit_ms", "ms", 1.5),
        Row("e", f"xarray to_icechunk {sz['xr_mb']:g} MB + commit (dask threads)", "xarray", "write", "total_s", "s", 1.0, "mb_per_s"),
        Row("e", "xarray open_zarr + mean (dask threads)", "xarray", "read", "total_s", "s", 1.0, "mb_per_s"),
        Row("f", f"commit of {n(sz['scale_refs'])} chunk refs (inline)", "scale", "write", "commit_s", "s", 1.5),
        Row("f", "peak RSS of that process (writes + commit)", "scale", "write", "peak_rss_mib", "MiB", 1.5),
        Row("f", "peak RSS during the commit alone (info)", "scale", "write", "commit_peak_rss_mib", "MiB", None),
        Row("f", "... of which the commit's own growth (info)", "scale", "write", "commit_rss_growth_mib", "MiB", None),
        Row("f", f"write of the {n(sz['scale_refs'])} chunks (store.set; info)", "scale", "write", "write_s", "s", None),
        Row("f", "fresh open + first random read", "scale", "read", "first_s", "s", None),
        Row("f", f"commit of {n(sz['scale_refs'])} virtual chunk refs", "scale-virtual", "write", "commit_s", "s", 1.5),
        Row("f", "peak RSS of that process (virtual; writes + commit)", "scale-virtual", "write", "peak_rss_mib", "MiB", 1.5),
        Row("f", f"set_virtual_refs of the {n(sz['scale_refs'])} refs (info)", "scale-virtual", "write", "write_s", "s", None),
        Row("f", "fresh open + first random read (virtual)", "scale-virtual", "read", "first_s", "s", None),
        Row("g", f"S3 (moto) bulk write {mib(sz['s3_mib'])} + commit", "bulk-s3", "write", "total_s", "s", 1.0, "mb_per_s"),
        Row("g", "S3 (moto) bulk read", "bulk-s3", "read", "total_s", "s", 1.0, "mb_per_s"),
    ]


# ---------------------------------------------------------------------------- running


@dataclass
class Interp:
    name: str
    python: str
    env: dict[str, str]
    impl_flag: str  # --impl of the workload scripts
    expect_file: Path | None  # icechunk must be imported from under here


def interpreters(impls: tuple[str, ...], src_dir: Path) -> dict[str, Interp]:
    out: dict[str, Interp] = {}
    if "ours" in impls:
        out["ours"] = Interp("ours", sys.executable, envs.ours_env_vars(src_dir), "icechunk",
                             src_dir)
    if "official" in impls:
        py = envs.official_python()
        out["official"] = Interp("official", str(py), envs.official_env_vars(), "icechunk",
                                 envs.VENV_DIR)
    if "zarr" in impls:
        out["zarr"] = Interp("zarr", sys.executable, envs.ours_env_vars(src_dir), "zarr", None)
    return out


class PhaseError(RuntimeError):
    pass


def run_phase(interp: Interp, script: str, phase: str, args: list[str], timeout: float) -> dict:
    cmd = [interp.python, str(WORKLOADS_DIR / script), phase, "--impl", interp.impl_flag,
           *[str(a) for a in args]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=interp.env,
                              cwd=str(REPO_ROOT), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PhaseError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        raise PhaseError(f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    try:
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PhaseError(f"no JSON from {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    found = (doc.get("info") or {}).get("icechunk_file")
    if interp.expect_file is not None:
        if not found or Path(interp.expect_file).resolve() not in Path(found).resolve().parents:
            raise PhaseError(f"{interp.name} imported icechunk from {found}, "
                             f"expected under {interp.expect_file}")
    doc["cmd"] = cmd
    return doc


def _fmt_secs(v: float) -> str:
    return f"{v:.3g}"


def run_all(opts: argparse.Namespace, sizes: dict, selected: list[Group]) -> list[dict]:
    workdir = Path(opts.workdir) if opts.workdir else Path(tempfile.mkdtemp(prefix="icechunk-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # A copy of src/ taken now: the whole run measures one version of our code even if
    # src/ is edited while it runs.
    src_copy = workdir / "src-snapshot"
    shutil.rmtree(src_copy, ignore_errors=True)
    shutil.copytree(envs.SRC_DIR, src_copy, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src_copy)], check=False)
    interps = interpreters(tuple(i for i in IMPLS if i in opts.impls), src_copy)
    moto = None
    runs: list[dict] = []
    try:
        if any(g.storage == "s3" for g in selected):
            from s3server import MotoServer

            moto = MotoServer()
            print(f"moto S3 server at {moto.url}", file=sys.stderr)
        for group in selected:
            impls = [i for i in group.impls if i in interps]
            for rep in range(opts.repeats):
                for impl in impls:
                    interp = interps[impl]
                    tag = f"{group.name}-{impl}-{rep}"
                    if group.storage == "s3":
                        assert moto is not None
                        where = ["--storage", "s3", "--s3-endpoint", moto.url,
                                 "--path", f"{tag}-{os.getpid()}"]
                    else:
                        where = ["--path", str(workdir / tag)]
                    record: dict[str, Any] = {"group": group.name, "impl": impl, "rep": rep,
                                              "phases": {}, "loadavg": os.getloadavg()}
                    line = [f"[{group.name}] {rep + 1}/{opts.repeats} {impl:8s}"]
                    try:
                        for phase in group.phases:
                            args = [*where, *group.args(sizes, phase)]
                            doc = run_phase(interp, group.script, phase, args, opts.timeout)
                            record["phases"][phase] = doc
                            m = doc["metrics"]
                            key = next((k for k in ("total_s", "commit_s") if k in m), None)
                            if key:
                                line.append(f"{phase} {_fmt_secs(m[key])}s")
                        checks = [p.get("check") for p in record["phases"].values()]
                        if len(checks) > 1 and len({json.dumps(c) for c in checks}) != 1:
                            raise PhaseError(f"read back differs from what was written: {checks}")
                    except PhaseError as exc:
                        record["error"] = str(exc)
                        line.append("FAILED")
                        print(f"{tag}: {exc}", file=sys.stderr)
                    finally:
                        if group.storage == "s3":
                            assert moto is not None
                            moto.reset()
                        else:
                            shutil.rmtree(workdir / tag, ignore_errors=True)
                    print("  ".join(line), file=sys.stderr, flush=True)
                    runs.append(record)
    finally:
        if moto is not None:
            moto.stop()
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return runs


# ---------------------------------------------------------------------------- reporting


def medians(runs: list[dict]) -> dict:
    """{group: {impl: {phase: {metric: median}}}} over the repeats that succeeded."""
    values: dict = {}
    for r in runs:
        if "error" in r:
            continue
        for phase, doc in r["phases"].items():
            for metric, v in doc["metrics"].items():
                if isinstance(v, (int, float)):
                    (values.setdefault(r["group"], {}).setdefault(r["impl"], {})
                     .setdefault(phase, {}).setdefault(metric, []).append(float(v)))
    return {g: {i: {p: {m: statistics.median(vs) for m, vs in ms.items()}
                    for p, ms in ps.items()} for i, ps in imps.items()}
            for g, imps in values.items()}


def table(sizes: dict, med: dict, selected: list[Group]) -> tuple[list[dict], str]:
    names = {g.name for g in selected}
    out: list[dict] = []
    for row in rows(sizes):
        if row.group not in names:
            continue
        cell: dict[str, Any] = {"id": row.letter, "label": row.label, "unit": row.unit,
                                "metric": f"{row.group}/{row.phase}/{row.metric}",
                                "target": row.target}
        for impl in IMPLS:
            v = med.get(row.group, {}).get(impl, {}).get(row.phase, {}).get(row.metric)
            cell[impl] = v
            if row.rate:
                cell[f"{impl}_rate"] = (med.get(row.group, {}).get(impl, {})
                                        .get(row.phase, {}).get(row.rate))
        if cell["ours"] is not None and cell["official"]:
            cell["ratio"] = cell["ours"] / cell["official"]
        else:
            cell["ratio"] = None
        if cell["ours"] is not None and cell.get("zarr"):
            cell["ratio_zarr"] = cell["ours"] / cell["zarr"]
        else:
            cell["ratio_zarr"] = None
        if row.target is not None and cell["ratio"] is not None:
            cell["meets_target"] = cell["ratio"] <= row.target
        else:
            cell["meets_target"] = None
        out.append(cell)

    def value(c: dict, impl: str) -> str:
        v = c.get(impl)
        if v is None:
            return ""
        text = f"{v:.3g} {c['unit']}" if c["unit"] != "MiB" else f"{v:.0f} MiB"
        rate = c.get(f"{impl}_rate")
        if rate:
            text += f" ({rate:.0f} MB/s)"
        return text

    head = ("| id | workload | ours | official 2.3.0 | zarr LocalStore | ours/official "
            "| target | met | ours/zarr |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|:---:|---:|"]
    for c in out:
        ratio = f"{c['ratio']:.2f}" if c["ratio"] is not None else ""
        target = f"≤ {c['target']:g}" if c["target"] is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[c["meets_target"]]
        rz = f"{c['ratio_zarr']:.2f}" if c["ratio_zarr"] is not None else ""
        lines.append(f"| {c['id']} | {c['label']} | {value(c, 'ours')} | {value(c, 'official')} "
                     f"| {value(c, 'zarr')} | {ratio} | {target} | {met} | {rz} |")
    return out, "\n".join(lines)


def git_info() -> dict:
    """HEAD and the files of src/ that differ from it (the code measured as 'ours')."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                                  text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "head": git("rev-parse", "HEAD").strip(),
        "src_changes": git("status", "--porcelain", "--", "src").splitlines(),
    }


def machine_info(interps_used: list[str]) -> dict:
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_start": os.getloadavg(),
        "python_ours": sys.version.split()[0],
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        info["mem_total_gib"] = round(int(meminfo[0].split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import importlib.metadata as md

        info["packages_ours"] = {p: md.version(p) for p in envs.SHARED_PACKAGES}
    except Exception:  # noqa: BLE001
        pass
    info["git"] = git_info()
    if "official" in interps_used:
        try:
            info["official_env"] = envs.build_info()
        except (OSError, ValueError):
            pass
    return info


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="abcdefg",
                   help="workload letters to run, e.g. 'ab' or 'c,d' (default: all, a-g)")
    p.add_argument("--impls", default=",".join(IMPLS), help="subset of ours,official,zarr")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    for key, default in DEFAULT_SIZES.items():
        kind = type(default)
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, default=None,
                       help=f"default {default} (--quick: {QUICK_SIZES[key]})")
    p.add_argument("--workdir", default=None,
                   help="where local repositories go (default: a fresh temporary directory)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per phase")
    p.add_argument("--json", default=str(BENCH_DIR / "results.json"),
                   help="where to write the results ('' for nowhere)")
    opts = p.parse_args(argv)
    opts.impls = tuple(i.strip() for i in opts.impls.split(",") if i.strip())
    bad = set(opts.impls) - set(IMPLS)
    if bad:
        p.error(f"unknown implementations: {sorted(bad)}")
    letters = set(opts.only.replace(",", "").replace(" ", ""))
    sizes = dict(QUICK_SIZES if opts.quick else DEFAULT_SIZES)
    for key in DEFAULT_SIZES:
        if getattr(opts, key) is not None:
            sizes[key] = getattr(opts, key)
    selected = [g for g in groups() if set(g.letters) & letters]
    if not selected:
        p.error(f"no workload matches --only {opts.only!r}")

    info = machine_info(list(opts.impls))
    started = time.monotonic()
    runs = run_all(opts, sizes, selected)
    info["loadavg_end"] = os.getloadavg()
    info["wall_seconds"] = round(time.monotonic() - started, 1)
    med = medians(runs)
    cells, text = table(sizes, med, selected)
    print()
    print(f"medians of {opts.repeats} run(s); ratio = ours/official time (or memory), "
          "lower is better")
    print(text)
    errors = [r for r in runs if "error" in r]
    if errors:
        print(f"\n{len(errors)} run(s) failed: " +
              ", ".join(f"{r['group']}/{r['impl']}/{r['rep']}" for r in errors))
    if opts.json:
        doc = {
            "command": [Path(sys.executable).name, *sys.argv],
            "machine": info,
            "sizes": sizes,
            "repeats": opts.repeats,
            "impls": list(opts.impls),
            "table": cells,
            "medians": med,
            "runs": runs,
        }
        Path(opts.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"\nwrote {opts.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
