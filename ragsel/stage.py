"""The stage contract.

A stage is a small class with a typed pydantic ``Config`` and one ``_run`` method whose
parameters are its *inputs* and whose return annotation is its *output*::

    @register_stage("top_k")
    class TopKCutoff(Stage):
        '''Keep the k best candidates.'''

        class Config(StageConfig):
            k: int = Field(5, ge=1)

        blocking = False  # pure, fast: run inline under arun()

        def _run(self, candidates: Candidates) -> Candidates:
            return candidates.derive(self.name, candidates.items[: self.config.k])

Inputs are read from ``_run``'s signature (a parameter with a default is optional; a
``Variadic[X]`` parameter accepts several connections). The output is named after the return
type (``Candidates`` -> ``candidates``) unless ``output_name`` is set; a stage with several
outputs annotates ``_run`` with a ``TypedDict`` and returns a dict.

Constructors are cheap and validating; heavy resources load in ``warm_up()`` or on first use.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from ragsel.errors import ConfigError, StageError, WiringError
from ragsel.typecheck import compatible, is_variadic, type_name, variadic_item


def _takes_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return any(isinstance(v, bool) for v in typing.get_args(annotation))
    return any(_takes_bool(a) for a in typing.get_args(annotation) if a is not type(None))


class StageConfig(BaseModel):
    """Base of every stage config: unknown fields are errors, values are immutable, types
    are strict where YAML is loose: a boolean is not a number (``k: true`` is not ``k=1``)
    and floats are finite (``.nan``/``.inf`` are refused)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool) and info.field_name in cls.model_fields:
            if not _takes_bool(cls.model_fields[info.field_name].annotation):
                raise ValueError(
                    f"expected {type_name(cls.model_fields[info.field_name].annotation)}, "
                    f"got the boolean {str(v).lower()}"
                )
        return v


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: Any
    required: bool
    variadic: bool = False

    @property
    def item_type(self) -> Any:
        return variadic_item(self.type) if self.variadic else self.type


def _output_name_for(tp: Any) -> str:
    name = getattr(typing.get_origin(tp) or tp, "__name__", "out")
    return {"NoneType": "out"}.get(name, name[:1].lower() + name[1:])


class Stage:
    """Base class of all stages. Subclasses implement ``_run`` (and optionally ``_arun``)."""

    type_name: ClassVar[str] = ""  # registry name, set by @register_stage
    Config: ClassVar[type[StageConfig]] = StageConfig
    #: Run in a worker thread under ``arun()`` (model calls, sync I/O). Pure, fast stages set
    #: False and run inline, which keeps async orchestration overhead low.
    blocking: ClassVar[bool] = True
    output_name: ClassVar[str | None] = None

    def __init__(
        self, config: StageConfig | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> None:
        cls = type(self)
        if isinstance(config, cls.Config):
            if kwargs:
                config = config.model_copy(update=kwargs)
                config = cls.Config.model_validate(config.model_dump())
        else:
            data = dict(config or {})
            data.update(kwargs)
            try:
                config = cls.Config.model_validate(data)
            except ValidationError as exc:
                raise config_error_from(exc, stage=cls.type_name or cls.__name__) from None
        self.config = config
        self.name: str = cls.type_name or cls.__name__
        self._setup()

    def _setup(self) -> None:
        """Hook for cheap, derived setup after the config is validated (no I/O, no models)."""

    # --- sockets -----------------------------------------------------------------------
    @classmethod
    def input_specs(cls) -> dict[str, InputSpec]:
        cached = cls.__dict__.get("_input_specs")
        if cached is None:
            cached = cls._compute_sockets()[0]
        return cached

    @classmethod
    def output_types(cls) -> dict[str, Any]:
        cached = cls.__dict__.get("_output_types")
        if cached is None:
            cached = cls._compute_sockets()[1]
        return cached

    @classmethod
    def _compute_sockets(cls) -> tuple[dict[str, InputSpec], dict[str, Any]]:
        fn = cls._run
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:  # an unresolvable annotation is a bug in the stage
            raise WiringError(
                f"cannot read the type annotations of {cls.__name__}._run: {exc}"
            ) from exc
        sig = inspect.signature(fn)
        inputs: dict[str, InputSpec] = {}
        for pname, param in sig.parameters.items():
            if pname == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise WiringError(f"{cls.__name__}._run may not take *args/**kwargs")
            tp = hints.get(pname, Any)
            inputs[pname] = InputSpec(pname, tp, param.default is param.empty, is_variadic(tp))
        ret = hints.get("return", Any)
        if typing.is_typeddict(ret):
            outputs = dict(typing.get_type_hints(ret, include_extras=True))
        else:
            outputs = {cls.output_name or _output_name_for(ret): ret}
        cls._input_specs = inputs  # type: ignore[attr-defined]
        cls._output_types = outputs  # type: ignore[attr-defined]
        cls._single_output = None if typing.is_typeddict(ret) else next(iter(outputs))  # type: ignore[attr-defined]
        return inputs, outputs

    @classmethod
    def single_output(cls) -> str | None:
        cls.output_types()
        return cls.__dict__.get("_single_output")

    # --- lifecycle ---------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load heavy resources (models, indexes). Called once before the first run."""

    def bind_components(self, components: Mapping[str, Any]) -> None:
        """Receive user objects named in YAML (see ``load_pipeline(components=...)``)."""

    def check_pipeline(self, pipeline: Any) -> None:
        """Check this stage against the pipeline it runs in, before the first run (called by
        ``Pipeline.warm_up``); e.g. a fitted learned cutoff must come from its upstream."""

    # --- running -----------------------------------------------------------------------
    # ``(*args, **inputs)``: each stage declares its own typed inputs; any signature overrides
    def _run(self, *args: Any, **inputs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _arun(self, *args: Any, **inputs: Any) -> Any:
        """Native async version; the default defers to ``_run`` (inline or in a thread)."""
        if self.blocking:
            return await asyncio.to_thread(self._run, **inputs)
        return self._run(**inputs)

    def _check_call(self, inputs: Mapping[str, Any]) -> None:
        specs = self.input_specs()
        unknown = set(inputs) - set(specs)
        if unknown:
            raise WiringError(
                f"stage '{self.name}' ({self.type_name}) has no input(s) "
                f"{sorted(unknown)}; its inputs are {sorted(specs)}"
            )
        missing = [n for n, s in specs.items() if s.required and n not in inputs]
        if missing:
            raise WiringError(
                f"stage '{self.name}' ({self.type_name}) is missing required input(s) {missing}"
            )

    def run(self, **inputs: Any) -> Any:
        """Run this stage alone (outside a pipeline). Errors are wrapped in StageError."""
        self._check_call(inputs)
        try:
            return self._run(**inputs)
        except StageError:
            raise
        except Exception as exc:
            raise StageError.wrap(self.name, self.type_name, exc) from exc

    async def arun(self, **inputs: Any) -> Any:
        self._check_call(inputs)
        try:
            return await self._arun(**inputs)
        except StageError:
            raise
        except Exception as exc:
            raise StageError.wrap(self.name, self.type_name, exc) from exc

    __call__ = run

    # --- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"type": ..., **config}`` with defaults omitted (the YAML stage form)."""
        data = self.config.model_dump(mode="json", exclude_defaults=True)
        return {"type": self.type_name, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        data = dict(data)
        type_ = data.pop("type", cls.type_name)
        if cls is Stage:
            from ragsel.registry import get_stage_class

            return get_stage_class(type_).from_dict(data)
        if type_ != cls.type_name:
            raise ConfigError(f"expected type '{cls.type_name}', got '{type_}'")
        return cls(data)

    def __eq__(self, other: object) -> bool:
        """Stages are equal when they are of one type with equal configs (what round-tripping
        through ``to_dict``/``from_dict`` preserves); the name in a pipeline is not compared."""
        return (
            isinstance(other, Stage) and type(other) is type(self) and other.config == self.config
        )

    def __hash__(self) -> int:
        # consistent with __eq__ (equal stages share a type); configs may hold unhashable
        # values, and stages are rarely hashed, so the type alone is the hash
        return hash(type(self))

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in self.config.model_dump(exclude_defaults=True).items()
        )
        return f"{type(self).__name__}({fields})"

    @classmethod
    def describe_sockets(cls) -> str:
        ins = ", ".join(
            f"{s.name}: {type_name(s.type)}{'' if s.required else ' = ...'}"
            for s in cls.input_specs().values()
        )
        outs = ", ".join(f"{n}: {type_name(t)}" for n, t in cls.output_types().items())
        return f"({ins}) -> ({outs})"


def sockets_compatible(out_type: Any, spec: InputSpec) -> bool:
    return compatible(out_type, spec.item_type)


def config_error_from(exc: ValidationError, stage: str) -> ConfigError:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<config>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown config field"
        parts.append(f"{loc}: {msg}")
    first_field = ".".join(str(x) for x in exc.errors()[0]["loc"]) if exc.errors() else None
    error = ConfigError("invalid config: " + "; ".join(parts), stage=stage, field=first_field)
    error.details = exc.errors()  # type: ignore[attr-defined]
    return error
