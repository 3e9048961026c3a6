# Partial stub of the flatbuffers runtime: the names icechunk.format uses.
from flatbuffers import flexbuffers as flexbuffers
from flatbuffers.builder import Builder as Builder

__version__: str
