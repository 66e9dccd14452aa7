"""`import ragsel` and `ragsel --help` stay light: no heavy framework is imported."""

import subprocess
import sys

HEAVY = (
    "torch",
    "transformers",
    "chromadb",
    "langchain_core",
    "llama_index",
    "sentence_transformers",
    "ragas",
)


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport sys\nprint('MODS:' + ','.join(m for m in "
            f"{HEAVY!r} if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("MODS:"), out.stdout
    return [m for m in last[5:].split(",") if m]


def test_import_ragsel_is_light():
    assert _loaded_after("import ragsel, ragsel.testing") == []


def test_cli_help_is_light():
    code = (
        "import sys\nsys.argv=['ragsel','--help']\nfrom ragsel.cli.main import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert _loaded_after(code) == []


def test_validate_loads_no_model(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("stages:\n  - {type: fake_retriever, texts: [a]}\n  - {type: top_k, k: 1}\n")
    code = f"from ragsel.spec import check_pipeline\nassert check_pipeline({str(f)!r}) == []"
    assert _loaded_after(code) == []


def test_public_api_is_exported():
    import ragsel

    for name in ragsel.__all__:
        assert hasattr(ragsel, name), name


def test_old_interop_name_forwards_to_ragsel_connect_with_a_warning():
    """The connectors' helpers moved out of the core; ``ragsel.interop.X`` still works."""
    import warnings

    import pytest
    import ragsel_connect

    import ragsel.interop

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ragsel.interop.model_builder is ragsel_connect.model_builder
        assert ragsel.interop.cap is ragsel_connect.cap
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "ragsel_connect.model_builder" in str(caught[0].message)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ragsel.interop.nope  # noqa: B018
