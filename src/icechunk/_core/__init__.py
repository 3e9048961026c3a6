"""The engine: repository state, refs and history, sessions, change sets, commit, rebase and merge."""
