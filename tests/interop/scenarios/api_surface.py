"""Describe the public API of whichever ``icechunk`` is importable, as JSON.

Runs unchanged under the official (Rust/pyo3) package and under ours, and
prints one JSON document on stdout:

``top``
    every public name of ``icechunk`` (``dir()`` minus leading underscores),
    each described by :func:`describe`.
``modules``
    the submodules users import from (``icechunk.xarray``, ``icechunk.dask``,
    ``icechunk.distributed``, ``icechunk.testing``) and every module that
    ``icechunk`` exposes as an attribute: for each, how it was read
    (``imported``; ``source`` when importing failed for want of an optional
    dependency and the names were read from its source with ``ast``;
    ``missing``), and its exported names (``__all__`` if it has one, else the
    public names defined in it).

A described object has a ``kind``.  Callables carry ``params`` (a list of
``{name, kind, default}``; ``default`` is the ``repr`` of a literal default,
``"..."`` for one we cannot render, absent when there is none) or ``null``
when no signature is available, and ``sig_source`` telling where the
parameters came from (``inspect``, ``text_signature``, ``docstring``,
``source``).  Classes carry ``members`` (public methods, properties,
attributes, nested classes and enum members, minus what they inherit from
builtins, the standard library or third-party bases such as zarr's
``Store``), ``icechunk_bases`` (names of their icechunk base classes, for
exception hierarchies), ``foreign_bases`` (qualified names of the other
bases) and ``enum_members`` when they are enum-like.

Pyo3 classes report ``builtins`` as their module and carry
``__text_signature__`` instead of Python signatures; ``inspect.signature``
reads those, so both implementations are introspected the same way.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import enum
import importlib
import importlib.util
import inspect
import json
import re
import sys
import textwrap
import types
import typing

PACKAGE = "icechunk"
# submodules users import explicitly; not attributes of the package until imported
EXTRA_SUBMODULES = ("xarray", "dask", "distributed", "testing")
STDLIB_MODULES = frozenset(
    {"builtins", "abc", "enum", "typing", "collections.abc", "_collections_abc", "types"}
)
INIT_METHODS = ("__init__", "__post_init__", "__new__", "__init_subclass__")


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------


def _render_default(value) -> str:
    if value is inspect.Parameter.empty:
        return None
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return repr(value)
    if value is Ellipsis:
        return "..."
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, tuple | list | dict | frozenset | set) and len(repr(value)) < 80:
        try:
            ast.literal_eval(repr(value))
        except (ValueError, SyntaxError):
            return "..."
        return repr(value)
    return "..."


def _params_from_signature(sig: inspect.Signature, drop_first: bool) -> list[dict]:
    params = list(sig.parameters.values())
    if (
        drop_first
        and params
        and params[0].kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    ):
        params = params[1:]
    out = []
    for p in params:
        entry = {"name": p.name, "kind": p.kind.name}
        default = _render_default(p.default)
        if default is not None:
            entry["default"] = default
        out.append(entry)
    return out


def _ast_default(node: ast.expr) -> str:
    try:
        return _render_default(ast.literal_eval(node))
    except (ValueError, SyntaxError, TypeError):
        return "..."


def _params_from_ast(args: ast.arguments, drop_first: bool) -> list[dict]:
    out: list[dict] = []
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for i, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        entry = {"name": arg.arg, "kind": kind}
        if defaults[i] is not None:
            entry["default"] = _ast_default(defaults[i])
        out.append(entry)
    if drop_first and out:
        out = out[1:]
    if args.vararg is not None:
        out.append({"name": args.vararg.arg, "kind": "VAR_POSITIONAL"})
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        entry = {"name": arg.arg, "kind": "KEYWORD_ONLY"}
        if default is not None:
            entry["default"] = _ast_default(default)
        out.append(entry)
    if args.kwarg is not None:
        out.append({"name": args.kwarg.arg, "kind": "VAR_KEYWORD"})
    return out


_DOC_SIGNATURE = re.compile(r"^\s*[A-Za-z_][\w.]*\((?P<args>.*)\)\s*(->.*)?$")


def _params_from_docstring(obj, drop_first: bool) -> list[dict] | None:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    match = _DOC_SIGNATURE.match(doc.strip().splitlines()[0])
    if not match:
        return None
    args = match.group("args").replace("$self", "self").replace("$cls", "cls")
    try:
        tree = ast.parse(f"def _f({args}): pass")
    except SyntaxError:
        return None
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    first = (fn.args.posonlyargs + fn.args.args)[:1]
    drop = drop_first or (bool(first) and first[0].arg in ("self", "cls"))
    return _params_from_ast(fn.args, drop)


def signature_of(obj, *, drop_first: bool = False) -> tuple[list[dict] | None, str | None]:
    """Parameters of a callable and where they came from."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        source = "text_signature" if getattr(obj, "__text_signature__", None) else "inspect"
        return _params_from_signature(sig, drop_first), source
    params = _params_from_docstring(obj, drop_first)
    if params is not None:
        return params, "docstring"
    return None, None


# --------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def is_foreign(cls: type) -> bool:
    """A base that is neither icechunk's own nor a pyo3 class of it."""
    module = getattr(cls, "__module__", "") or ""
    if cls is object:
        return True
    if module == "builtins":
        # pyo3 classes say "builtins" too; real builtins live in the builtins module
        return getattr(builtins, cls.__name__, None) is cls
    if module in STDLIB_MODULES:
        return True
    return not (
        module == PACKAGE or module.startswith(PACKAGE + ".") or module.startswith("_" + PACKAGE)
    )


def _is_enum_like(cls: type) -> bool:
    if isinstance(cls, enum.EnumMeta):
        return True
    return any(
        isinstance(value, cls)
        for name, value in vars(cls).items()
        if not name.startswith("_") and not isinstance(value, type)
    )


def _instance_attributes(cls: type) -> set[str]:
    """``self.NAME = ...`` assignments in the constructors of a Python class."""
    names: set[str] = set()
    for method_name in INIT_METHODS:
        func = cls.__dict__.get(method_name)
        if not isinstance(func, types.FunctionType):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(func))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    names.add(target.attr)
        # object.__setattr__(self, "name", value) in frozen dataclasses
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "__setattr__"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                names.add(node.args[1].value)
    return names


def _declared_attributes(cls: type) -> dict[str, type]:
    """Attribute names a class declares without a class-level value:
    dataclass fields, ``__slots__``, annotations, constructor assignments.
    Maps each to the class of the MRO that declares it."""
    found: dict[str, type] = {}
    for klass in reversed(cls.__mro__):
        if is_foreign(klass):
            continue
        declared: set[str] = set()
        if dataclasses.is_dataclass(klass):
            declared |= {f.name for f in dataclasses.fields(klass)}
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        declared |= set(slots)
        try:
            annotations = inspect.get_annotations(klass)
        except Exception:  # a broken annotation must not abort the report
            annotations = {}
        if isinstance(annotations, dict):
            declared |= {name for name, ann in annotations.items() if "ClassVar" not in str(ann)}
        declared |= _instance_attributes(klass)
        for name in declared:
            if not name.startswith("_"):
                found[name] = klass
    return found


def _owner(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def describe_member(cls: type, name: str) -> dict:
    static = inspect.getattr_static(cls, name)
    if isinstance(static, staticmethod):
        params, source = signature_of(static.__func__)
        return _callable_entry("method", "static", params, source, static.__func__)
    if isinstance(static, classmethod):
        params, source = signature_of(getattr(cls, name))
        return _callable_entry("method", "class", params, source, static.__func__)
    if isinstance(static, types.ClassMethodDescriptorType):
        params, source = signature_of(getattr(cls, name))
        return _callable_entry("method", "class", params, source, None)
    if isinstance(static, property | types.GetSetDescriptorType | types.MemberDescriptorType):
        return {"kind": "property" if isinstance(static, property) else "attribute"}
    if isinstance(static, type):
        params, source = signature_of(static)
        entry = _callable_entry("class", None, params, source, None)
        return entry
    if isinstance(
        static, types.FunctionType | types.MethodDescriptorType | types.BuiltinFunctionType
    ):
        params, source = signature_of(getattr(cls, name), drop_first=True)
        return _callable_entry("method", "instance", params, source, static)
    value = getattr(cls, name)
    if isinstance(value, cls) or isinstance(static, enum.Enum):
        return {"kind": "enum_member"}
    if callable(static):
        params, source = signature_of(value)
        return _callable_entry("method", "other", params, source, None)
    entry = {"kind": "constant"}
    rendered = _render_default(value)
    if rendered is not None and rendered != "...":
        entry["value"] = rendered
    return entry


def _callable_entry(kind, binding, params, source, func) -> dict:
    entry: dict = {"kind": kind}
    if binding is not None:
        entry["binding"] = binding
    entry["params"] = params
    if source is not None:
        entry["sig_source"] = source
    if func is not None and inspect.iscoroutinefunction(func):
        entry["async"] = True
    return entry


def describe_class(cls: type) -> dict:
    entry: dict = {
        "kind": "exception" if issubclass(cls, BaseException) else "class",
    }
    params, source = signature_of(cls)
    entry["params"] = params
    if source is not None:
        entry["sig_source"] = source
    entry["icechunk_bases"] = sorted(
        {klass.__name__ for klass in cls.__mro__[1:] if not is_foreign(klass)}
    )
    entry["foreign_bases"] = sorted(
        {_qualname(klass) for klass in cls.__mro__[1:] if is_foreign(klass) and klass is not object}
    )
    members: dict[str, dict] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = _owner(cls, name)
        if owner is None or is_foreign(owner):
            continue
        try:
            members[name] = describe_member(cls, name)
        except Exception as exc:  # introspection must never abort the report
            members[name] = {"kind": "unknown", "error": f"{type(exc).__name__}: {exc}"}
    for name, owner in _declared_attributes(cls).items():
        if name not in members and not is_foreign(owner):
            members[name] = {"kind": "attribute"}
    entry["members"] = dict(sorted(members.items()))
    if _is_enum_like(cls):
        entry["kind"] = "enum"
        entry["enum_members"] = sorted(
            name for name, member in members.items() if member["kind"] == "enum_member"
        )
    return entry


# --------------------------------------------------------------------------
# any object
# --------------------------------------------------------------------------


def describe(obj) -> dict:
    if isinstance(obj, types.ModuleType):
        return {"kind": "module"}
    if isinstance(obj, type):
        try:
            return describe_class(obj)
        except Exception as exc:
            return {"kind": "class", "error": f"{type(exc).__name__}: {exc}"}
    if isinstance(obj, types.UnionType) or typing.get_origin(obj) is not None:
        return {"kind": "type_alias"}
    if callable(obj):
        params, source = signature_of(obj)
        entry = _callable_entry("function", None, params, source, obj)
        return entry
    entry = {"kind": "constant"}
    rendered = _render_default(obj)
    if rendered is not None and rendered != "...":
        entry["value"] = rendered
    return entry


# --------------------------------------------------------------------------
# modules read from source (optional dependencies missing)
# --------------------------------------------------------------------------


def _decorator_names(node) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        if isinstance(dec, ast.Name):
            names.add(dec.id)
        elif isinstance(dec, ast.Attribute):
            names.add(dec.attr)
    return names


def _describe_ast_function(node, *, in_class: bool) -> dict:
    decorators = _decorator_names(node)
    if in_class and decorators & {"property", "cached_property"}:
        return {"kind": "property"}
    if in_class and "staticmethod" in decorators:
        binding, drop = "static", False
    elif in_class and "classmethod" in decorators:
        binding, drop = "class", True
    elif in_class:
        binding, drop = "instance", True
    else:
        binding, drop = None, False
    entry = _callable_entry(
        "method" if in_class else "function",
        binding,
        _params_from_ast(node.args, drop),
        "source",
        None,
    )
    if isinstance(node, ast.AsyncFunctionDef):
        entry["async"] = True
    return entry


def _describe_ast_class(node: ast.ClassDef) -> dict:
    members: dict[str, dict] = {}
    init_params = None
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            if item.name == "__init__":
                init_params = _params_from_ast(item.args, True)
            if item.name.startswith("_"):
                continue
            if "overload" in _decorator_names(item):
                continue
            members[item.name] = _describe_ast_function(item, in_class=True)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            if not item.target.id.startswith("_"):
                members[item.target.id] = {"kind": "attribute"}
        elif isinstance(item, ast.Assign):
            for target in item.targets:
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    members[target.id] = {"kind": "constant"}
    return {
        "kind": "class",
        "params": init_params,
        "sig_source": "source" if init_params is not None else None,
        "members": dict(sorted(members.items())),
    }


def describe_module_source(path: str) -> dict[str, dict]:
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=path)
    defined: dict[str, dict] = {}
    exported: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if "overload" in _decorator_names(node):
                continue
            defined[node.name] = _describe_ast_function(node, in_class=False)
        elif isinstance(node, ast.ClassDef):
            defined[node.name] = _describe_ast_class(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not isinstance(target, ast.Name):
                    continue
                if target.id == "__all__" and node.value is not None:
                    try:
                        exported = list(ast.literal_eval(node.value))
                    except (ValueError, SyntaxError):
                        pass
                elif not target.id.startswith("_"):
                    defined.setdefault(target.id, {"kind": "constant"})
    if exported is None:
        exported = [name for name in defined if not name.startswith("_")]
    return {name: defined.get(name, {"kind": "unknown"}) for name in sorted(exported)}


# --------------------------------------------------------------------------
# modules
# --------------------------------------------------------------------------


def module_exports(mod: types.ModuleType) -> list[str]:
    exported = getattr(mod, "__all__", None)
    if exported is not None:
        return sorted(set(exported))
    names = []
    for name in dir(mod):
        if name.startswith("_"):
            continue
        value = getattr(mod, name)
        if isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", None) == mod.__name__:
            names.append(name)
    return sorted(names)


def describe_module(qualified: str) -> dict:
    try:
        mod = importlib.import_module(qualified)
    except ImportError as exc:
        try:
            spec = importlib.util.find_spec(qualified)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return {"status": "missing", "error": f"{type(exc).__name__}: {exc}"}
        # present, but an optional dependency (xarray, dask, hypothesis ...) is not installed
        try:
            names = describe_module_source(spec.origin)
        except (OSError, SyntaxError) as exc2:
            return {"status": "missing", "error": f"{type(exc2).__name__}: {exc2}"}
        return {"status": "source", "error": f"{type(exc).__name__}: {exc}", "names": names}
    except Exception as exc:
        return {"status": "missing", "error": f"{type(exc).__name__}: {exc}"}
    names = {}
    for name in module_exports(mod):
        if not hasattr(mod, name):
            names[name] = {"kind": "unknown", "error": "listed in __all__ but not defined"}
            continue
        names[name] = describe(getattr(mod, name))
    return {"status": "imported", "names": names}


def main() -> None:
    pkg = importlib.import_module(PACKAGE)
    top: dict[str, dict] = {}
    submodules = set()
    for name in sorted(dir(pkg)):
        if name.startswith("_"):
            continue
        value = getattr(pkg, name)
        top[name] = describe(value)
        if isinstance(value, types.ModuleType) and value.__name__ == f"{PACKAGE}.{name}":
            submodules.add(name)
    modules = {}
    for name in sorted(submodules | set(EXTRA_SUBMODULES)):
        modules[f"{PACKAGE}.{name}"] = describe_module(f"{PACKAGE}.{name}")
    result = {
        "package": {
            "file": getattr(pkg, "__file__", None),
            "version": getattr(pkg, "__version__", None),
        },
        "python": sys.version.split()[0],
        "top": top,
        "modules": modules,
    }
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
