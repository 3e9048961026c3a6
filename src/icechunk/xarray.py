"""The official ``icechunk.xarray`` module: :func:`to_icechunk`.

The implementation lives in the ``icechunk_xarray`` package (``icechunk_xarray.write``);
importing this module also registers the ``.icechunk`` accessor on Datasets and DataArrays.
"""

import icechunk_xarray  # noqa: F401 - registers the accessor
from icechunk_xarray.write import to_icechunk

__all__ = ["to_icechunk"]
