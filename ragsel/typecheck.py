"""Build-time compatibility of stage socket types (Optional, Union, list/tuple/Sequence,
subclasses, Any). Checked once when a graph is built, never per call."""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from typing import Annotated, Any, Union

_VARIADIC = object()

T = typing.TypeVar("T")


#: ``Variadic[X]``: an input that accepts any number of connections, each giving an X; the
#: stage receives ``list[X]`` (in a deterministic order: by upstream stage name)
Variadic = Annotated[list[T], _VARIADIC]


def is_variadic(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Annotated and _VARIADIC in annotation.__metadata__


def variadic_item(annotation: Any) -> Any:
    (inner,) = typing.get_args(typing.get_args(annotation)[0])
    return inner


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


_SEQUENCE_ORIGINS = (list, tuple, cabc.Sequence, cabc.Iterable, cabc.Collection)


def compatible(src: Any, dst: Any) -> bool:
    """Can a value of static type ``src`` always be passed where ``dst`` is expected?"""
    if dst is Any or src is dst:
        return True
    if src is Any:  # an untyped output is trusted
        return True
    if typing.get_origin(src) is Annotated:
        src = typing.get_args(src)[0]
    if typing.get_origin(dst) is Annotated:
        dst = typing.get_args(dst)[0]
    if _is_union(src):  # every alternative must fit
        return all(compatible(s, dst) for s in typing.get_args(src))
    if _is_union(dst):  # some alternative must fit
        return any(compatible(src, d) for d in typing.get_args(dst))
    if src is type(None) or dst is type(None):
        return src is dst
    s_origin, d_origin = typing.get_origin(src) or src, typing.get_origin(dst) or dst
    if not (isinstance(s_origin, type) and isinstance(d_origin, type)):
        return src == dst
    if not issubclass(s_origin, d_origin):
        return False
    d_args, s_args = typing.get_args(dst), typing.get_args(src)
    if not d_args:
        return True
    if not s_args:  # bare list vs list[X]: element type unknown, trust it
        return True
    if d_origin in _SEQUENCE_ORIGINS or issubclass(d_origin, cabc.Sequence):
        s_item = s_args[0]
        d_item = d_args[0]
        return compatible(s_item, d_item)
    if len(s_args) != len(d_args):
        return False
    return all(compatible(s, d) for s, d in zip(s_args, d_args))


def type_name(tp: Any) -> str:
    if is_variadic(tp):
        return f"Variadic[{type_name(variadic_item(tp))}]"
    if tp is Any:
        return "Any"
    if _is_union(tp):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin is not None:
        args = ", ".join(type_name(a) if a is not Ellipsis else "..." for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))
