"""Reading pipeline YAML safely: bytes to data plus the ``file:line:col`` of every value.

Hostile files answer quickly with a located :class:`~ragsel.errors.PipelineSpecError`:

- bytes that are not UTF-8, NUL and other control characters: the line and column of the byte;
- nesting deeper than :data:`MAX_DEPTH` (``[[[[...``): refused while composing, before Python's
  recursion limit is near;
- alias bombs (``&a [*b, *b, ...]`` nested a few levels expands to millions of values): the
  size of every value is counted *with aliases expanded*, once per node, and a value larger
  than :data:`MAX_NODES` is refused at its line; an alias inside its own anchor
  (``&r [1, *r]``) is refused as recursive;
- duplicate keys (a stage, a config key, a top-level key): every repeat is reported with both
  locations instead of the last silently winning.

Only the safe YAML tags are constructed (``yaml.SafeLoader``); no Python object is created.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ragsel.errors import PipelineSpecError, Problem

#: Deepest nesting of lists/mappings in a pipeline file (real files use fewer than 8).
MAX_DEPTH = 64
#: Most values a file may hold once aliases are expanded (real files hold a few hundred).
MAX_NODES = 50_000

Loc = dict[tuple, tuple[int, int]]


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def decode(raw: bytes, file: str | None) -> str:
    """UTF-8 text of a pipeline file; bad bytes and control characters are located."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = raw[: exc.start]
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        raise PipelineSpecError(
            Problem(
                f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
                file,
                line,
                col,
            )
        ) from None
    text = text.removeprefix("\ufeff")
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad is not None:
        raise PipelineSpecError(
            Problem(
                f"control character U+{ord(bad.group()):04X} is not allowed in a pipeline "
                "file; remove it (write \\x.. escapes inside double quotes)",
                file,
                *_line_col(text, bad.start()),
            )
        )
    return text


def read(source: str | os.PathLike[str]) -> tuple[str, str | None]:
    """The text of ``source`` (a .yaml/.yml path, or YAML text itself) and its file name."""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        if not path.is_file():
            raise PipelineSpecError(Problem(f"pipeline file not found: {path}", str(path)))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PipelineSpecError(
                Problem(f"cannot read pipeline file: {exc}", str(path))
            ) from exc
        return decode(raw, str(path)), str(path)
    return decode(str(source).encode("utf-8", errors="surrogateescape"), None), None


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer enforces the limits above and collects duplicate keys."""

    def __init__(self, text: str, file: str | None) -> None:
        super().__init__(text)
        self.file = file
        self.duplicates: list[Problem] = []
        self._depth = 0
        self._open: list[str | None] = []  # anchors of the collections being composed
        self._size: dict[int, int] = {}  # id(node) -> values inside it, aliases expanded
        self._nodes: list[yaml.Node] = []  # keep composed nodes alive (ids stay unique)

    def _fail(self, message: str, mark: Any) -> PipelineSpecError:
        return PipelineSpecError(Problem(message, self.file, mark.line + 1, mark.column + 1))

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise self._fail(
                    f"recursive alias *{event.anchor}: the anchor &{event.anchor} contains "
                    "itself; a pipeline file must be a tree",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise self._fail(
                f"nesting deeper than {MAX_DEPTH} levels; a pipeline file is a few levels deep",
                event.start_mark,
            )
        self._depth += 1
        self._open.append(getattr(event, "anchor", None))
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.pop()
        if node is not None:
            self._count(node)
        return node

    def _count(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = node.value
        else:
            kids = []
        size = 1 + sum(self._size.get(id(k), 1) for k in kids)
        if size > MAX_NODES:
            raise self._fail(
                f"this value expands to more than {MAX_NODES:,} values (aliases expanded): "
                "refused as an alias bomb; write the values out or use fewer aliases",
                node.start_mark,
            )
        self._size[id(node)] = size
        self._nodes.append(node)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        first: dict[Any, yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            prev = first.setdefault(key.value, key)
            if prev is not key:
                m = prev.start_mark
                self.duplicates.append(
                    Problem(
                        f"duplicate key '{key.value}' (first at line {m.line + 1}, column "
                        f"{m.column + 1}); a key may appear once, remove one of them",
                        self.file,
                        key.start_mark.line + 1,
                        key.start_mark.column + 1,
                    )
                )
        return node


def locations(node: yaml.Node, path: tuple = (), out: Loc | None = None) -> Loc:
    """``path -> (line, column)`` of every value (and ``path + ("__key__",)`` of every key)."""
    out = {} if out is None else out
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out.setdefault(
                path + (key, "__key__"), (k.start_mark.line + 1, k.start_mark.column + 1)
            )
            locations(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            locations(v, path + (i,), out)
    return out


def parse(text: str, file: str | None) -> tuple[Any, Loc]:
    """The data of one YAML document and the location of each of its values."""
    loader = _Loader(text, file)
    try:
        node = loader.get_single_node()
        if loader.duplicates:
            raise PipelineSpecError(loader.duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        msg = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        raise PipelineSpecError(
            Problem(msg, file, mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        ) from None
    finally:
        loader.dispose()
    return data, (locations(node) if node is not None else {})
