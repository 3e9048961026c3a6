"""Interop scenario: run every ``Repository.inspect_*`` on every metadata file.

Usage: python inspect_repo.py <repo_path>

Runs unchanged under the official icechunk and under ours (it only imports
``icechunk``).  Prints one JSON document shaped like the fixtures'
``inspect.json``::

    {"repo": {...}, "snapshots": {id: {...}}, "manifests": {id: {...}},
     "transactions": {id: {...}}}

Snapshot, manifest and transaction-log ids are the file names found under
``snapshots/``, ``manifests/`` and ``transactions/``.  A call that raises is
recorded as the string ``"unavailable: <exception class name>"``.
"""

import json
import os
import sys

import icechunk as ic


def attempt(call, *args):
    try:
        return call(*args)
    except Exception as err:  # recorded, so both sides can be compared
        return f"unavailable: {type(err).__name__}"


def file_ids(root, folder):
    path = os.path.join(root, folder)
    if not os.path.isdir(path):
        return []
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def main(path):
    repo = ic.Repository.open(ic.local_filesystem_storage(path))
    out = {"repo": attempt(repo.inspect_repo_info)}
    for folder, call in (
        ("snapshots", repo.inspect_snapshot),
        ("manifests", repo.inspect_manifest),
        ("transactions", repo.inspect_transaction_log),
    ):
        out[folder] = {i: attempt(call, i) for i in file_ids(path, folder)}
    print(json.dumps(out, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
