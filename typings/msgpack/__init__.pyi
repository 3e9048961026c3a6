# Partial stub of msgpack: the one-shot packer and unpacker.
from typing import Any

# Decoded values are whatever the MessagePack data holds (scalars, str/bytes, lists, dicts).
def unpackb(
    packed: bytes | bytearray | memoryview,
    *,
    raw: bool = False,
    strict_map_key: bool = True,
    use_list: bool = True,
) -> Any: ...
def packb(o: Any, *, use_bin_type: bool = True) -> bytes: ...
