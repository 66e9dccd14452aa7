"""Loaders for PDF, HTML and DOCX files (the ``ingest`` extra: ``pip install "ragsel[ingest]"``).

Libraries, chosen for being maintained, pure Python (or wheels everywhere) and offline:

- **PDF: pypdf** -- pure Python, no system dependencies, actively maintained (the successor of
  PyPDF2), extracts the text layer page by page so every page's start offset is known.
  (pdfplumber gives better table layout but pulls in pdfminer.six and Pillow; scanned PDFs
  need OCR, which no text extractor does: they are reported, not indexed empty.)
- **HTML: trafilatura** -- maintained, the top scorer of several main-text extraction
  benchmarks; it drops navigation, footers and boilerplate that would pollute retrieval. Tables
  are kept (``include_tables``) and recall is favoured; a page it finds no main text in falls
  back to the visible text of the whole page (lxml).
- **DOCX: python-docx** -- the standard library for .docx; paragraphs and tables are read in
  body order (a table row becomes one line, cells joined by `` | ``).

The document text is what chunk spans refer to. A PDF's metadata holds ``page_starts`` (the
offset where each page's text begins; pages are joined by a blank line) and the chunkers turn
it into ``page`` / ``page_end`` (1-based) on every chunk, so evidence can be cited by page.

A file that cannot be read (broken, encrypted, no text layer) or a missing library gives an
:class:`~ragsel.ingest.documents.IngestWarning` naming the file and the reason, and is
skipped: the rest of the corpus is indexed and the warning appears in the index report.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: suffix -> format name
RICH_SUFFIXES = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx"}
_PACKAGES = {"pdf": "pypdf", "html": "trafilatura", "docx": "python-docx"}

Loaded = tuple[str, str, dict[str, Any]]  # text, title, metadata


def _pdf(path: Path) -> Loaded:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if reader.is_encrypted:
        raise ValueError("the PDF is encrypted; decrypt it first (e.g. qpdf --decrypt)")
    parts, starts, pos = [], [], 0
    for i, page in enumerate(reader.pages):
        text = (page.extract_text() or "").strip("\n")
        starts.append(pos)
        sep = "\n\n" if i < len(reader.pages) - 1 else ""
        parts.append(text + sep)
        pos += len(text) + len(sep)
    info = reader.metadata
    title = str(info.title) if info is not None and info.title else ""
    meta = {"format": "pdf", "pages": len(starts), "page_starts": starts}
    return "".join(parts), title, meta


def _html_fallback(raw: str) -> tuple[str, str]:
    import lxml.html

    tree = lxml.html.fromstring(raw)
    for bad in tree.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    title = (tree.findtext(".//title") or "").strip()
    lines = [line.strip() for line in tree.text_content().splitlines()]
    return "\n".join(line for line in lines if line), title


def _html(path: Path) -> Loaded:
    import trafilatura

    raw = path.read_bytes().decode("utf-8", errors="replace")
    text = trafilatura.extract(
        raw,
        include_tables=True,
        include_comments=False,
        favor_recall=True,
        output_format="txt",
        with_metadata=False,
    )
    meta_obj = trafilatura.extract_metadata(raw)
    title = (meta_obj.title or "") if meta_obj is not None else ""
    how = "trafilatura"
    if not text or not text.strip():
        text, fallback_title = _html_fallback(raw)
        title = title or fallback_title
        how = "visible text"
    return text, title, {"format": "html", "extracted_by": how}


def _docx(path: Path) -> Loaded:
    import docx
    from docx.table import Table

    d = docx.Document(str(path))
    lines: list[str] = []
    heading = ""
    for block in d.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
            continue
        text = block.text.strip()
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        if not heading and (style.startswith("Heading") or style == "Title"):
            heading = text
        lines.append(text)
    title = d.core_properties.title or heading
    return "\n".join(lines), title, {"format": "docx"}


_LOADERS: dict[str, Callable[[Path], Loaded]] = {"pdf": _pdf, "html": _html, "docx": _docx}


def load_rich_file(path: Path, doc_id: str) -> Any:
    """A PDF/HTML/DOCX file as one :class:`~ragsel.ingest.documents.Document`, or ``None``
    with an :class:`~ragsel.ingest.documents.IngestWarning` saying why it was skipped."""
    from ragsel.ingest.documents import Document, IngestWarning, file_hash

    kind = RICH_SUFFIXES[path.suffix.lower()]
    try:
        text, title, meta = _LOADERS[kind](path)
    except ImportError:
        warnings.warn(
            f"{path}: reading {kind.upper()} files needs {_PACKAGES[kind]}: "
            'pip install "ragsel[ingest]"; skipped',
            IngestWarning,
            stacklevel=3,
        )
        return None
    except Exception as exc:  # a broken file must not stop the rest of the corpus
        warnings.warn(
            f"{path}: cannot read as {kind.upper()} ({type(exc).__name__}: {exc}); skipped",
            IngestWarning,
            stacklevel=3,
        )
        return None
    if not text.strip():
        hint = " (a scanned PDF? it needs OCR first)" if kind == "pdf" else ""
        warnings.warn(
            f"{path}: no text could be extracted{hint}; skipped", IngestWarning, stacklevel=3
        )
        return None
    meta = {"source": doc_id, **meta}
    return Document(doc_id, text, title or path.stem, meta, str(path), file_hash(path))
