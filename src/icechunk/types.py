"""Type aliases of the public API."""

from typing import Literal

#: How a session's changes become a snapshot: a new commit, or amending the last one.
CommitMethod = Literal["new_commit", "amend"]

__all__ = ["CommitMethod"]
