"""Every registered stage: importable, typed, its config round-trips through to_dict/YAML."""

import importlib.util

import pytest
import yaml

from ragsel import Stage, get_stage_class, stage_names
from ragsel.registry import BUILTIN_STAGES

_OPTIONAL = {"langchain_retriever": "langchain_core", "llamaindex_retriever": "llama_index"}


def _cls(name):
    mod = _OPTIONAL.get(name)
    if mod and importlib.util.find_spec(mod) is None:
        pytest.skip(f"{mod} not installed")
    return get_stage_class(name)


@pytest.mark.parametrize("name", sorted(BUILTIN_STAGES))
def test_builtin_stage_resolves_and_declares_types(name):
    cls = _cls(name)
    assert issubclass(cls, Stage)
    assert cls.type_name == name
    assert cls.__doc__ and cls.__doc__.strip(), f"{name} needs a docstring"
    assert cls.output_types(), f"{name} declares no output"
    cls.input_specs()


def _minimal_config(cls) -> dict:
    """Fill required fields with a plausible value so the stage can be constructed."""
    cfg = {}
    for fname, field in cls.Config.model_fields.items():
        if field.is_required():
            ann = str(field.annotation)
            cfg[fname] = "x" if "str" in ann or "Path" in ann else [] if "list" in ann else 1
    return cfg


@pytest.mark.parametrize("name", sorted(BUILTIN_STAGES))
def test_config_round_trips(name):
    cls = _cls(name)
    try:
        stage = cls(_minimal_config(cls))
    except Exception as exc:  # a stage whose required fields need real values
        pytest.skip(f"cannot build {name} from a generic config: {exc}")
    data = stage.to_dict()
    assert Stage.from_dict(data) == stage
    assert Stage.from_dict(yaml.safe_load(yaml.safe_dump(data))) == stage


def test_stage_names_lists_builtins():
    assert set(BUILTIN_STAGES) <= set(stage_names())


def test_test_fakes_and_plugins_are_not_named_by_the_core():
    import os
    import subprocess
    import sys

    from ragsel.registry import BUILTIN_STAGES

    assert not any(t.startswith(("ragsel.testing:", "ragsel_")) for t in BUILTIN_STAGES.values())
    code = (
        "import sys\n"
        "from ragsel.errors import UnknownStageError\n"
        "from ragsel.registry import get_stage_class, stage_names\n"
        "names = stage_names()\n"
        "assert 'fake_retriever' not in names and 'noop' not in names, names\n"
        "assert 'langchain_retriever' in names  # a plug-in, from its entry point\n"
        "assert 'langchain_core' not in sys.modules  # listed without importing LangChain\n"
        "try:\n"
        "    get_stage_class('fake_retriever')\n"
        "except UnknownStageError as e:\n"
        "    assert 'fake_retriever' not in ', '.join(e.known)\n"
        "else:\n"
        "    raise AssertionError('a test fake was offered')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAGSEL_TEST_STAGES"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_stage_configs_are_strict_about_booleans_and_non_finite_floats():
    """Every stage inherits it from StageConfig (issue 14): YAML's `k: true` is not k=1."""
    from typing import Literal

    from pydantic import Field

    from ragsel.errors import ConfigError
    from ragsel.stage import Stage, StageConfig

    class _Strict(Stage):
        class Config(StageConfig):
            k: int = 1
            x: float | None = None
            flag: bool = False
            mode: Literal[True, "auto"] = "auto"
            xs: list[float] = Field(default_factory=list)

        def _run(self, n: int) -> int:
            return n

    for bad in (
        {"k": True},
        {"x": False},
        {"x": float("nan")},
        {"x": float("inf")},
        {"xs": [1e400]},
    ):
        with pytest.raises(ConfigError):
            _Strict(bad)
    ok = _Strict({"k": 3, "x": 2, "flag": True, "mode": True})
    assert ok.config.k == 3 and ok.config.x == 2.0 and ok.config.flag and ok.config.mode is True


def test_one_resolver_for_embedders_bound_then_registry():
    from ragsel.backends.embedders import load_embedder
    from ragsel.stages._resources import Embedders
    from ragsel.testing import FakeEmbedder

    mine = FakeEmbedder()
    emb = Embedders()
    emb.bind({"mine": mine, "other": object()}, "mine", None)
    assert emb.get("mine") is mine  # a bound component wins
    assert emb.get("minilm") is load_embedder("minilm")  # else the shared registry instance
    assert emb.get("minilm") is emb.get("minilm")
