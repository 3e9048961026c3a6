"""Interop scenario: upgrade a spec-1 repository to spec 2.

Usage: python upgrade_repo.py <repo_path> [--dry-run] [--keep-v1-files]

Runs unchanged under the official icechunk and under ours.  Prints a JSON
summary: the spec version before and after (of the object returned and of a
fresh open), refs after, and the files of the repository before and after
(relative paths with SHA-256 prefixes; lock files of our local storage left out).
"""

import hashlib
import json
import os
import sys

import icechunk as ic


def files(root):
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(".lock"):
                continue  # our local storage's lock file
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()[:16]
            out[os.path.relpath(path, root).replace(os.sep, "/")] = digest
    return dict(sorted(out.items()))


def spec(repo):
    return int(repo.spec_version)


def main(path, flags):
    dry_run = "--dry-run" in flags
    delete = "--keep-v1-files" not in flags
    before = files(path)
    storage = ic.local_filesystem_storage(path)
    repo = ic.Repository.open(storage)
    spec_before = spec(repo)
    new = ic.upgrade_icechunk_repository(repo, dry_run=dry_run, delete_unused_v1_files=delete)
    reopened = ic.Repository.open(ic.local_filesystem_storage(path))
    summary = {
        "spec_before": spec_before,
        "spec_returned": spec(new),
        "spec_reopened": spec(reopened),
        "branches": {b: reopened.lookup_branch(b) for b in sorted(reopened.list_branches())},
        "tags": {t: reopened.lookup_tag(t) for t in sorted(reopened.list_tags())},
        "files_before": before,
        "files_after": files(path),
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
