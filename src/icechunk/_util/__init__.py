"""Helpers every layer may use: the sync bridge, backoff, debugging info."""
