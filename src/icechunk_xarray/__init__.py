"""xarray integration for the pure-Python Icechunk (``icechunk-py``).

This package is a placeholder: it is importable so that packaging, imports and entry points can
be wired up now, but it has no features yet. The ``Dataset.icechunk`` accessor
(``ds.icechunk.to_icechunk(session)``) and the xarray backend engine ``"icechunk"``
(``xr.open_dataset(session.store, engine="icechunk")``) arrive later, in phase P5.

Until then, xarray users can already write and read through the Zarr store a session exposes::

    ds.to_zarr(session.store, mode="w", consolidated=False)
    xr.open_zarr(session.store, consolidated=False)
"""

__all__: list[str] = []
