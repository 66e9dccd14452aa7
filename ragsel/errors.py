"""The ragsel exception tree, split by who has to act.

::

    RagselError
    ├── DefinitionError          the user must fix a pipeline, a config or an input (CLI exit 2)
    │   ├── PipelineSpecError    YAML syntax/structure; carries every Problem with file:line:col
    │   ├── UnknownStageError    a stage type that is not registered (lists the closest match)
    │   ├── ConfigError          a stage config field is unknown, missing or of the wrong type
    │   ├── WiringError          graph problems: type mismatch, ambiguous or dangling connection,
    │   │   │                    missing required input, duplicate stage name
    │   │   └── CycleError       the graph has a cycle (the cycle is named)
    │   ├── InputError           bad run-time input: empty query, unreadable corpus, bad dataset
    │   │   └── RagselIndexError an index that is missing, from another version/model, or locked
    │   │                        (``IndexError_`` is its deprecated old name)
    │   └── MissingExtraError    an optional dependency is not installed (also an ImportError)
    ├── StageError               a stage failed while running (names the stage, chains the cause)
    └── BackendError             a model/LLM/store backend failed; ``retryable`` says if a retry
        ├── BackendTimeout       may help
        ├── LLMOutputError       the model's output is unusable (invalid JSON/schema after repair)
        └── ContextLengthError   the prompt does not fit the model's context window
"""

from __future__ import annotations

from dataclasses import dataclass


class RagselError(Exception):
    """Base of every error ragsel raises on purpose. Credentials in URLs inside the message
    are redacted (:func:`ragsel.redact.redact_text`): errors are shown and logged."""

    exit_code = 1

    def __init__(self, *args: object) -> None:
        from ragsel.redact import redact_text

        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class DefinitionError(RagselError):
    """Something the user wrote or passed is wrong; fixing it is the user's job."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One located problem in a pipeline file (``file:line:col: message``)."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __post_init__(self) -> None:
        from ragsel.redact import redact_text

        object.__setattr__(self, "message", redact_text(self.message))

    def __str__(self) -> str:
        where = self.file or "<pipeline>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class PipelineSpecError(DefinitionError):
    """A pipeline definition has one or more problems; ``problems`` lists all of them."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownStageError(DefinitionError):
    def __init__(self, name: str, known: list[str], suggestion: str | None = None):
        self.name, self.known, self.suggestion = name, known, suggestion
        hint = f" Did you mean '{suggestion}'?" if suggestion else ""
        super().__init__(
            f"unknown stage type '{name}'.{hint} Registered types: {', '.join(sorted(known))}"
        )


class ConfigError(DefinitionError):
    """Invalid stage configuration. ``field`` is the dotted config path when known."""

    def __init__(self, message: str, *, stage: str | None = None, field: str | None = None):
        self.stage, self.field = stage, field
        prefix = f"stage '{stage}': " if stage else ""
        super().__init__(prefix + _without_stage_prefix(message, stage))


class WiringError(DefinitionError):
    """The stages do not fit together as connected."""


class CycleError(WiringError):
    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__(
            "the pipeline has a cycle: "
            + " -> ".join(cycle + cycle[:1])
            + ". Remove one of these connections; a pipeline must be a DAG."
        )


class InputError(DefinitionError):
    """Bad run-time input (empty query, unreadable corpus, malformed dataset...)."""


class RagselIndexError(InputError):
    """An index that is missing, incompatible (version/model/chunker) or locked. (Not named
    ``IndexError``, which would shadow the builtin.)"""


_DEPRECATED = {"IndexError_": ("RagselIndexError", RagselIndexError)}


def __getattr__(name: str) -> type:
    if name in _DEPRECATED:
        import warnings

        new, cls = _DEPRECATED[name]
        warnings.warn(
            f"ragsel.errors.{name} is deprecated; use ragsel.errors.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls
    raise AttributeError(f"module 'ragsel.errors' has no attribute {name!r}")


class MissingExtraError(DefinitionError, ImportError):
    """An optional dependency is missing; the message says the exact pip command."""

    def __init__(self, extra: str, package: str, purpose: str = ""):
        self.extra, self.package = extra, package
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"'{package}' is needed{what} but is not installed. "
            f'Install it with: pip install "ragsel[{extra}]"'
        )


class StageError(RagselError):
    """A stage raised while running. The original exception is chained as ``__cause__``.
    Always exit 1: a failure at run time, even when its cause (a missing index, an unset
    endpoint) is the user's to fix -- exit 2 means the definition or input was rejected
    before anything ran."""

    #: True when the message already says what the chained cause says (``wrap``)
    cause_shown: bool = False

    def __init__(self, stage: str, stage_type: str, message: str):
        self.stage, self.stage_type = stage, stage_type
        super().__init__(f"stage '{stage}' ({stage_type}) failed: {message}")

    @classmethod
    def wrap(cls, stage: str, stage_type: str, exc: BaseException) -> StageError:
        """Wrap any exception raised inside a stage (chain it with ``from exc``)."""
        if isinstance(exc, StageError):
            return exc
        msg = str(exc) if isinstance(exc, RagselError) else f"{type(exc).__name__}: {exc}"
        msg = _without_stage_prefix(msg, stage)  # the stage is named once, by StageError
        err = cls(stage, stage_type, msg)  # a run-time failure: exit 1, whatever the cause
        err.cause_shown = True
        return err


class BackendError(RagselError):
    """A backend (embedder, LLM endpoint, vector store) failed."""

    def __init__(self, message: str, *, backend: str = "", retryable: bool = False):
        self.backend, self.retryable = backend, retryable
        super().__init__(f"{backend}: {message}" if backend else message)


class BackendTimeout(BackendError):
    def __init__(self, message: str, *, backend: str = ""):
        super().__init__(message, backend=backend, retryable=True)


class LLMOutputError(BackendError):
    """The model's output could not be used (invalid JSON or schema violation after the repair
    retry). ``text`` is the last output, ``problem`` what was wrong with it."""

    def __init__(self, message: str, *, backend: str = "", text: str = "", problem: str = ""):
        self.text, self.problem = text, problem
        super().__init__(message, backend=backend, retryable=False)


class ContextLengthError(BackendError):
    """The prompt does not fit the model's context window: shorten the input (stages truncate
    evidence, never instructions) or use a model with a longer context."""

    def __init__(self, message: str, *, backend: str = ""):
        super().__init__(message, backend=backend, retryable=False)


def _without_stage_prefix(message: str, stage: str | None) -> str:
    """``message`` without a leading ``stage '<stage>': `` (so a stage is named once)."""
    prefix = f"stage '{stage}': "
    while stage and message.startswith(prefix):
        message = message[len(prefix) :]
    return message


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional module or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module.split(".")[0], purpose) from exc
