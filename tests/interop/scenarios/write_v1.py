"""Interop scenario: a spec-version-1 repository with a rich history.

Usage: python write_v1.py <repo_path>

Only the official package can write spec 1 (``Repository.create(...,
spec_version=1)``); ours reads such repositories and upgrades them.  The
history is the one of write_rich.py (dtype zoo, native/inline chunks, 1000
chunks, sharding, grow and shrink resizes, deleted arrays and groups, a
re-created path, branch ``dev``, tag ``v1``, deleted tag ``doomed``), run with
spec 1, followed by a few spec-1 specifics:

* a persisted configuration (``config.yaml``, with manifest splitting);
* a tag on the initial snapshot (``genesis``);
* a second deleted tag (``gone-too``) whose snapshot is on no branch any more;
* a branch (``scratch``) with one commit, deleted afterwards;
* one more commit on ``main`` written with that configuration.

Prints the summary of write_rich.py plus the ids added here.
"""

import importlib.util
import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import zarr

import icechunk as ic

INITIAL = "1CECHNKREP0F1RSTCMT0"


def load_write_rich():
    # -I (isolated mode) keeps the script folder off sys.path: load by file name
    path = Path(__file__).resolve().parent / "write_rich.py"
    spec = importlib.util.spec_from_file_location("_write_rich_for_v1", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(path):
    write_rich = load_write_rich()
    create = ic.Repository.create

    def create_v1(storage, *args, **kwargs):
        kwargs.setdefault("spec_version", 1)
        return create(storage, *args, **kwargs)

    ic.Repository.create = create_v1
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            write_rich.main(path)
    finally:
        ic.Repository.create = create
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    commits = summary["commits"]

    storage = ic.local_filesystem_storage(path)
    split = ic.ManifestSplittingConfig.from_dict(
        {
            ic.ManifestSplitCondition.path_matches("^/split.*"): {
                ic.ManifestSplitDimCondition.Axis(0): 2,
                ic.ManifestSplitDimCondition.Any(): 3,
            }
        }
    )
    config = ic.RepositoryConfig(
        inline_chunk_threshold_bytes=64,
        manifest=ic.ManifestConfig(splitting=split),
    )
    repo = ic.Repository.open(storage, config=config)
    repo.save_config()

    repo.create_tag("genesis", INITIAL)
    repo.create_branch("scratch", commits["c5"])
    s = repo.writable_session("scratch")
    root = zarr.open_group(s.store, mode="r+")
    root.attrs["scratch"] = True
    commits["s1"] = s.commit("s1: scratch work", metadata={"tmp": True})
    repo.create_tag("gone-too", commits["s1"])
    repo.delete_tag("gone-too")
    repo.delete_branch("scratch")

    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    arr = root.create_array(
        "split",
        shape=(9, 7),
        chunks=(2, 2),
        dtype="int16",
        fill_value=-1,
        dimension_names=("r", "c"),
    )
    arr[:] = np.arange(63, dtype="int16").reshape(9, 7)
    root["a/int32"].resize((12, 8))
    commits["c6"] = s.commit("c6: after config", metadata={"split": [2, 3]})

    summary = {
        "branches": {b: repo.lookup_branch(b) for b in sorted(repo.list_branches())},
        "tags": {t: repo.lookup_tag(t) for t in sorted(repo.list_tags())},
        "commits": commits,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
