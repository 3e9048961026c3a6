"""The official icechunk 2.3.0 reads a dataset that ``to_icechunk`` wrote here.

The official package runs in its own virtualenv (``tests/helpers/official_env.py``), which has
zarr but not xarray: it reads every array (values, attributes, dimension names) through zarr,
and xarray here decodes what it read with ``xr.decode_cf``. The result must be identical to
the dataset that was written, for both versions of the history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")


import icechunk as ic  # noqa: E402
from icechunk.xarray import to_icechunk  # noqa: E402
from tests.helpers import official_env  # noqa: E402
from tests.integration.test_xarray import era5_like, fresh_encoding, strip  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.slow]

READ_WITH_ZARR = r"""
import json, sys
import numpy as np
import zarr
import icechunk as ic

repo = ic.Repository.open(ic.local_filesystem_storage(sys.argv[1]))
out = {}
for snapshot_id in sys.argv[2:]:
    session = repo.readonly_session(snapshot_id=snapshot_id)
    root = zarr.open_group(session.store, mode="r")
    arrays = {}
    for name, array in root.arrays():
        values = array[...]
        arrays[name] = {
            "dtype": str(values.dtype),
            "shape": list(values.shape),
            "dims": list(array.metadata.dimension_names or []),
            "attrs": dict(array.attrs),
            "values": [None if v != v else v for v in values.ravel().tolist()],
        }
    out[snapshot_id] = {"attrs": dict(root.attrs), "arrays": arrays}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def official() -> None:
    official_env.official_python_or_skip()


def as_dataset(dump: dict) -> xr.Dataset:
    """What the official side read, as raw (encoded) variables, decoded here by xarray."""
    variables = {}
    for name, info in dump["arrays"].items():
        values = np.array(
            [np.nan if v is None else v for v in info["values"]], dtype=info["dtype"]
        ).reshape(info["shape"])
        variables[name] = xr.Variable(info["dims"], values, info["attrs"])
    raw = xr.Dataset(variables, attrs=dump["attrs"])
    coords = [n for n, v in raw.variables.items() if n in v.dims]
    return xr.decode_cf(raw.set_coords(coords))


def test_official_reads_what_to_icechunk_wrote(tmp_path: Path, official: None) -> None:
    full = era5_like(8)
    path = tmp_path / "repo"
    repo = ic.Repository.create(ic.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    to_icechunk(full.isel(time=slice(0, 4)), session, encoding=fresh_encoding(full))
    first = session.commit("numpy-backed first write")
    session = repo.writable_session("main")
    to_icechunk(strip(full.isel(time=slice(4, 8))).chunk(time=4), session, append_dim="time")
    second = session.commit("dask-backed append")

    dumps = official_env.run_official(READ_WITH_ZARR, path, first, second)
    for sid, want in ((first, full.isel(time=slice(0, 4))), (second, full)):
        got = as_dataset(dumps[sid]).set_coords("step_hours")
        xr.testing.assert_identical(got, want)
