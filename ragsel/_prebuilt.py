"""Building objects from values that are already known to be valid, without validating them
again: the connectors' per-document conversions (``ragsel.interop``) run on every adapter
call, and re-validation was most of their cost (budget: 0.2 ms per call).

- :func:`model_builder` - pydantic models (LangChain ``Document``, LlamaIndex ``TextNode``).
- :func:`slot_builder` - ragsel's frozen slotted dataclasses (``Chunk``, ``Event``,
  ``ScoredChunk``, ``Dropped``); also the retrieval hot path's ``ragsel.types.new_*``.

Both check themselves when created: each builds a sample and compares it with the normal,
validating constructor, and falls back to that constructor if they differ (a changed class, a
new pydantic). The callers own the validation that is skipped;
``tests/test_connectors_conversion.py`` compares the results with normally built objects.
"""

from __future__ import annotations

import dataclasses
import enum
import keyword
from collections.abc import Callable, Sequence
from typing import Any

_new, _setattr = object.__new__, object.__setattr__  # for model_builder
#: default values instances may share (immutable)
_ATOMS = (str, bytes, int, float, complex, bool, enum.Enum, frozenset)


def model_builder(cls: type, **sample: Any) -> Callable[..., Any]:
    """A function ``build(**values)`` making instances of the pydantic model ``cls`` from
    values that are already valid, for the fields named in ``sample`` (always all of them):
    what ``cls.model_construct(**values)`` does, at a fraction of its cost (pydantic resolves
    every default on each ``model_construct`` call, which makes it slower than validating).

    >>> make = model_builder(Document, page_content="", id="x", metadata={})  # doctest: +SKIP
    >>> doc = make(page_content="text", id="c1", metadata={"score": 0.5})

    The other fields' defaults are computed once, from ``cls(**sample)``; they must be
    immutable or empty lists/dicts/sets (a new one per instance, so instances never share
    them). The given fields are marked as set, as validation would. The result is a real
    ``cls`` instance, equal to ``cls(**values)`` with the same ``model_dump()``: that is
    checked on ``sample``. For a model with other defaults, post-init hooks, private or extra
    attributes, or if the check fails, ``cls`` itself is returned (so callers simply
    validate). Values are not copied: pass objects the new instance may own.
    """
    validated = cls(**sample)
    if (
        getattr(cls, "__pydantic_post_init__", "?") is not None
        or getattr(cls, "__private_attributes__", True)
        or validated.__pydantic_extra__ is not None
        or validated.__pydantic_private__ is not None
        or not all(_usable(n) for n in validated.__dict__)
    ):
        return cls
    namespace: dict[str, Any] = {
        "_pb_new": _new,
        "_pb_set": _setattr,
        "_pb_cls": cls,
        "_pb_fields": frozenset(sample),
    }
    entries = []
    for name, default in validated.__dict__.items():
        if name in sample:
            entries.append(f"{name!r}: {name}")
        elif isinstance(default, (list, dict, set)) and not default:
            namespace[f"_pb_d_{name}"] = default  # an empty container: a new one per instance
            entries.append(f"{name!r}: _pb_d_{name}.copy()")
        elif default is None or isinstance(default, _ATOMS):
            namespace[f"_pb_d_{name}"] = default
            entries.append(f"{name!r}: _pb_d_{name}")
        else:  # a default that instances could share and mutate: let pydantic make it
            return cls
    code = (
        f"def build(*, {', '.join(sample)}):\n"
        "    obj = _pb_new(_pb_cls)\n"
        f"    _pb_set(obj, '__dict__', {{{', '.join(entries)}}})\n"
        "    _pb_set(obj, '__pydantic_fields_set__', set(_pb_fields))\n"
        "    _pb_set(obj, '__pydantic_extra__', None)\n"
        "    _pb_set(obj, '__pydantic_private__', None)\n"
        "    return obj\n"
    )
    build = _compile(code, namespace, f"build_{cls.__name__}")
    try:
        probe = build(**sample)
        same = (
            type(probe) is cls
            and probe == validated
            and probe.model_fields_set == validated.model_fields_set
            and probe.model_dump() == validated.model_dump()
        )
    except Exception:  # noqa: BLE001 - any failure means: use the real constructor
        same = False
    return build if same else cls


def _usable(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_pb")


def _compile(code: str, namespace: dict[str, Any], name: str) -> Callable[..., Any]:
    """The function ``build`` defined by ``code`` (generated like dataclasses' ``__init__``)."""
    exec(compile(code, f"<ragsel._prebuilt {name}>", "exec"), namespace)
    build = namespace["build"]
    build.__qualname__ = build.__name__ = name
    return build


def slot_builder(cls: type, sample: Sequence[Any]) -> Callable[..., Any]:
    """A function ``build(*values)`` making a frozen, slotted dataclass ``cls`` from one value
    per field, in field order, without running ``__init__``/``__post_init__``. The caller
    guarantees what ``__post_init__`` would check or normalise; ``sample`` (already normalised
    values) is built both ways and compared, and ``cls`` itself is returned when the two
    differ or ``cls`` is not a slotted dataclass deriving directly from ``object``.

    >>> build = slot_builder(Event, ("s", "retrieved", "", 1.0, _EMPTY))  # doctest: +SKIP
    >>> build("bm25", "retrieved", "rank 1", 0.7, _EMPTY) == Event("bm25", "retrieved", ...)

    How: a frozen dataclass sets every field through ``object.__setattr__``, a slow generic
    call. ``build`` fills an instance of a plain twin class with the same slots by ordinary
    attribute stores and then relabels it as ``cls`` (``__class__`` assignment, allowed
    between classes with the same slot layout): 3-4x cheaper (``eval/benchmarks/perf/hot_path.py``),
    and the result is a genuine, still frozen ``cls`` instance. The hot path (retrievers,
    fusion, cutoffs) builds ~600 of these per query.
    """
    if (
        not dataclasses.is_dataclass(cls)
        or "__slots__" not in cls.__dict__
        or cls.__bases__ != (object,)
    ):
        return cls
    names = [f.name for f in dataclasses.fields(cls)]
    if (
        len(names) != len(sample)
        or tuple(names) != tuple(cls.__slots__)
        or not all(_usable(n) for n in names)
    ):
        return cls
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": cls.__slots__, "__module__": __name__})
    body = "".join(f"    obj.{n} = {n}\n" for n in names)
    build = _compile(
        f"def build({', '.join(names)}):\n    obj = _pb_twin()\n{body}"
        "    obj.__class__ = _pb_cls\n    return obj\n",
        {"_pb_twin": twin, "_pb_cls": cls},
        f"build_{cls.__name__}",
    )
    try:
        probe = build(*sample)
        same = type(probe) is cls and probe == cls(*sample)
    except Exception:  # noqa: BLE001 - any failure means: use the real constructor
        same = False
    return build if same else cls
