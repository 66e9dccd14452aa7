"""The error tree: every error ragsel raises on purpose is a RagselError, old names still work
with a deprecation warning, and a stage is named once in a message."""

from __future__ import annotations

import pytest

import ragsel
from ragsel import Pipeline, StageError, WiringError
from ragsel.errors import (
    BackendError,
    ConfigError,
    ContextLengthError,
    InputError,
    LLMOutputError,
    RagselError,
    RagselIndexError,
)
from ragsel.stages.cutoff.top_k import TopKCutoff


def test_llm_errors_are_in_the_tree_and_importable_from_both_places():
    from ragsel.backends.llm import base

    assert base.LLMOutputError is LLMOutputError and base.ContextLengthError is ContextLengthError
    for cls in (LLMOutputError, ContextLengthError):
        assert issubclass(cls, BackendError) and issubclass(cls, RagselError)
        assert cls.__name__ in ragsel.__all__ and cls.__name__ in (ragsel.errors.__doc__ or "")
    err = LLMOutputError("bad json", backend="m", text="{", problem="unterminated")
    assert not err.retryable and err.text == "{" and str(err) == "m: bad json"


def test_index_error_has_a_plain_name_and_a_deprecated_alias():
    assert issubclass(RagselIndexError, InputError) and "RagselIndexError" in ragsel.__all__
    with pytest.warns(DeprecationWarning, match="use ragsel.errors.RagselIndexError"):
        from ragsel.errors import IndexError_
    assert IndexError_ is RagselIndexError
    with pytest.raises(AttributeError):
        ragsel.errors.NoSuchError  # noqa: B018


def test_stage_is_named_once_when_an_error_already_names_it():
    inner = ConfigError("k must be positive", stage="cut")
    assert str(inner) == "stage 'cut': k must be positive"
    wrapped = StageError.wrap("cut", "top_k", inner)
    assert str(wrapped) == "stage 'cut' (top_k) failed: k must be positive"
    again = ConfigError("stage 'cut': bad value", stage="cut")
    assert str(again) == "stage 'cut': bad value"
    other = StageError.wrap("cut", "top_k", InputError("stage 'ret': no index"))
    assert "stage 'ret': no index" in str(other)  # another stage's name is kept


def test_duplicate_instance_message_names_the_stage():
    stage = TopKCutoff(k=1)
    p = Pipeline().add("a", stage)
    with pytest.raises(WiringError, match="create a second instance for 'b'"):
        p.add("b", stage)


def test_equal_stages_hash_alike():
    a, b, c = TopKCutoff(k=2), TopKCutoff(k=2), TopKCutoff(k=3)
    assert a == b and hash(a) == hash(b) and a != c
    assert len({a, b, c}) == 2
