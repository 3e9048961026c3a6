"""Code shared by the test modules: object-store servers (``storage_servers``), the conflict
scenarios (``conflict_cases``), the official package's virtualenv (``official_env``) and the
paths of the repository and of its test data (``paths``).

Imported as ``from tests.helpers import ...`` (pytest's ``pythonpath = ["."]`` in
pyproject.toml puts the repository root on ``sys.path``). ``conflict_cases.py`` is also run,
by file name, under the official package's interpreter, so it imports nothing from here.
"""
