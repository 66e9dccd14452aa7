"""PDF / HTML / DOCX loaders (real pypdf, trafilatura, python-docx on files made here), page
numbers and spans on chunks, a broken file among good ones, and binary files / symlink loops
reported instead of indexed or silently skipped."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from ragsel.ingest import IngestWarning, iter_documents, make_chunker

pytest.importorskip("pypdf")
pytest.importorskip("docx")
pytest.importorskip("trafilatura")


def tiny_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page (written by hand: no PDF writer
    draws text, and a fixture built here cannot go stale)."""
    objs: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font = 3 + 2 * n
    for i, text in enumerate(pages):
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Supply Agreement", level=1)
    d.add_paragraph("The supplier may not assign this agreement without written consent.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Term", "Notice"
    table.cell(1, 0).text, table.cell(1, 1).text = "24 months", "90 days"
    d.add_paragraph("Governing law is the law of Delaware.")
    d.save(str(path))


HTML = """<!DOCTYPE html><html><head><title>Privacy Policy</title>
<script>var tracking = "do not index me";</script></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
<main><h1>Privacy Policy</h1>
<p>We collect your email address to send receipts. We never sell personal data to third
parties, and you may ask us to delete your account at any time by writing to us.</p>
<p>Cookies are used to keep you signed in and to measure how the site is used, and you can
turn analytics cookies off in the settings page of your account.</p></main>
<footer>Copyright 2026 Example Corp. All rights reserved.</footer></body></html>"""


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "filing.pdf").write_bytes(
        tiny_pdf(["Revenue grew nine percent in fiscal 2025.", "Risk factors include supply."])
    )
    make_docx(root / "contract.docx")
    (root / "policy.html").write_text(HTML)
    (root / "notes.txt").write_text("Plain notes about the supplier.")
    return root


def _load(root: Path) -> tuple[dict, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = {d.id: d for d in iter_documents(root)}
    return docs, [str(w.message) for w in caught if issubclass(w.category, IngestWarning)]


def test_pdf_html_docx_load_with_pages_and_spans(corpus):
    docs, warns = _load(corpus)
    assert set(docs) == {"filing.pdf", "contract.docx", "policy.html", "notes.txt"}, warns
    pdf = docs["filing.pdf"]
    assert "Revenue grew nine percent" in pdf.text and "Risk factors" in pdf.text
    assert pdf.metadata["format"] == "pdf" and pdf.metadata["pages"] == 2
    chunks = list(make_chunker("words", size=5, overlap=0).chunk(pdf))
    for c in chunks:  # spans cite the text back; pages cite the file
        assert pdf.text[c.span[0] : c.span[1]] == c.text
        assert "page_starts" not in c.metadata
    first = next(c for c in chunks if "Revenue" in c.text)
    last = next(c for c in chunks if "supply" in c.text)
    assert first.metadata["page"] == 1 and last.metadata["page"] == last.metadata["page_end"] == 2
    doc = docs["contract.docx"]
    assert doc.title == "Supply Agreement" and "24 months | 90 days" in doc.text
    assert doc.text.index("assign") < doc.text.index("Term") < doc.text.index("Delaware")
    page = docs["policy.html"]
    assert page.title == "Privacy Policy" and "never sell personal data" in page.text
    assert "do not index me" not in page.text and "All rights reserved" not in page.text


def test_a_broken_file_is_reported_and_the_rest_indexed(corpus):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\x01")
    (corpus / "broken.docx").write_bytes(b"PK\x03\x04 truncated zip")
    docs, warns = _load(corpus)
    assert set(docs) == {"filing.pdf", "contract.docx", "policy.html", "notes.txt"}
    assert any("broken.pdf" in w and "skipped" in w for w in warns)
    assert any("broken.docx" in w and "cannot read as DOCX" in w for w in warns)


def test_index_report_names_the_broken_file(corpus, tmp_path):
    from ragsel.index.builder import read_corpus

    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\ngarbage")
    docs, warns = read_corpus(corpus)
    assert len(docs) == 4 and any("broken.pdf" in w for w in warns)


def test_binary_without_nul_bytes_is_reported_not_indexed_as_text(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    (root / "ok.txt").write_text("Readable text, with accents: café, naïve.")
    (root / "latin1.txt").write_bytes(
        "Caf\xe9 cr\xe8me br\xfbl\xe9e is a dessert.".encode("latin-1")
    )
    (root / "blob.txt").write_bytes(bytes(range(1, 256)) * 40)  # no NUL, not text
    docs, warns = _load(root)
    assert set(docs) == {"ok.txt", "latin1.txt"}  # a few bad bytes: still text (with a warning)
    assert any("blob.txt" in w and "looks binary" in w for w in warns)


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_symlink_loops_and_folder_links_are_reported(tmp_path):
    root = tmp_path / "c"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "self").symlink_to(root / "self")  # a loop
    (root / "dangling.txt").symlink_to(root / "missing.txt")
    (root / "sub" / "up").symlink_to(root)  # a folder link that would loop
    (root / "alias.txt").symlink_to(root / "a.txt")  # a link to a file is read
    docs, warns = _load(root)
    assert set(docs) == {"a.txt", "alias.txt"}
    (w,) = [w for w in warns if "symbolic link" in w]
    assert "skipped 3 symbolic link(s)" in w and "self (broken or looping link)" in w
    assert "sub/up (link to a folder, not followed)" in w
