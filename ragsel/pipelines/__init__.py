"""Pipelines shipped inside the package (the YAML files next to this module).

``documents.yaml`` is the document-selection pipeline the connectors use when none is given
(``RagselCompressor()``, ``RagselPostprocessor()``): :func:`document_selection` loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The default document-selection pipeline (score unscored documents, guard, cut).
DOCUMENTS = Path(__file__).with_name("documents.yaml")


def document_selection(variables: dict[str, str] | None = None) -> Any:
    """A fresh :class:`ragsel.Pipeline` from :data:`DOCUMENTS` (models load on first use)."""
    from ragsel.spec import load_pipeline

    return load_pipeline(DOCUMENTS, variables=variables)
