"""The version of this package (see the README for the scheme)."""

__version__ = "0.1.0"
