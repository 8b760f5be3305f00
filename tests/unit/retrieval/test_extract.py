from __future__ import annotations

import codecs
import io

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from interlock.retrieval.extract import ExtractError, UnsupportedFile, extract_text, html_text, kind_of

SECRET = "Aurelia-7731"  # a phrase that must never reach an error message


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A real PDF, written by pypdf: one Helvetica text line a page."""
    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject(
            {NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
             NameObject("/BaseFont"): NameObject("/Helvetica")}
        )  # fmt: skip
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        stream = DecodedStreamObject()
        if text:
            escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            stream.set_data(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        page.replace_contents(stream)
    if password is not None:
        writer.encrypt(password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_plain_text_and_markdown_are_kept() -> None:
    assert extract_text(b"line one\r\nline two\n", "notes.txt") == "line one\nline two"
    md = "# Title\n\n* a **bold** point\n"
    assert extract_text(md.encode(), "README.md") == md.strip()
    assert extract_text("naïve café".encode(), "a.txt") == "naïve café"


def test_byte_order_marks() -> None:
    assert extract_text(codecs.BOM_UTF8 + "héllo".encode(), "a.txt") == "héllo"
    assert extract_text("héllo wörld".encode("utf-16"), "a.txt") == "héllo wörld"


def test_invalid_text_is_refused_without_its_content() -> None:
    with pytest.raises(ExtractError) as caught:
        extract_text(SECRET.encode() + b"\xff\xfe\xfa", "a.txt")
    assert "UTF-8" in caught.value.message and SECRET not in caught.value.message
    with pytest.raises(ExtractError, match="NUL"):
        extract_text(SECRET.encode() + b"\x00\x01", "a.txt")
    assert caught.value.status == 400


def test_html_keeps_visible_text_only() -> None:
    html = """<!DOCTYPE html><html><head><title>Handbook</title><style>p {color: red}</style>
    <script>var secret = "do not index";</script></head>
    <body><h1>Leave   policy</h1><p>Staff get 25 days&nbsp;a year &amp; public holidays.</p>
    <ul><li>Carry over: 5 days</li><li>Notice: 2 weeks</li></ul>
    <table><tr><td>Grade</td><td>Days</td></tr></table><pre>keep   this
  layout</pre><noscript>enable js</noscript><template><p>hidden</p></template></body></html>"""
    text = extract_text(html.encode(), "handbook.html")
    assert "do not index" not in text and "color" not in text and "enable js" not in text and "hidden" not in text
    assert "Handbook" in text
    assert "Leave policy" in text.splitlines()
    assert "Staff get 25 days a year & public holidays." in text.splitlines()  # &nbsp; collapses too
    assert "Carry over: 5 days" in text.splitlines() and "Notice: 2 weeks" in text.splitlines()
    assert "Grade Days" in text
    assert "keep   this" in text.splitlines()  # <pre> keeps its spaces (lines are stripped)
    assert html_text(html) == text


def test_html_charset() -> None:
    body = '<html><head><meta charset="iso-8859-1"></head><body><p>café</p></body></html>'.encode("latin-1")
    assert extract_text(body, "page.htm") == "café"
    assert extract_text("<p>café</p>".encode("cp1252"), "page", "text/html; charset=windows-1252") == "café"


def test_pdf_pages() -> None:
    pdf = make_pdf(["The warranty lasts 24 months.", "", "Returns within 30 days (receipt needed)."])
    text = extract_text(pdf, "terms.pdf")
    assert text == "The warranty lasts 24 months.\n\nReturns within 30 days (receipt needed)."
    assert extract_text(pdf, "upload", "application/octet-stream") == text  # found by its header


def test_pdf_with_a_password_damaged_or_empty() -> None:
    with pytest.raises(ExtractError, match="password"):
        extract_text(make_pdf([SECRET], password="pw"), "locked.pdf")
    assert extract_text(make_pdf([SECRET], password=""), "open.pdf") == SECRET  # an empty user password opens
    damaged = make_pdf([SECRET])[:200]
    with pytest.raises(ExtractError, match="cannot be read") as caught:
        extract_text(damaged, "broken.pdf")
    assert SECRET not in caught.value.message
    with pytest.raises(ExtractError, match="no extractable text"):
        extract_text(make_pdf([""]), "scan.pdf")


def test_kinds() -> None:
    assert kind_of("a.MD", None, b"") == "markdown"
    assert kind_of("a", "text/markdown; charset=utf-8", b"") == "markdown"
    assert kind_of("a", None, b"<!doctype html><p>x") == "html"
    assert kind_of("data.bin", "text/plain", b"x") == "text"
    assert kind_of("noext", None, b"just words") == "text"


def test_unsupported_files() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    with pytest.raises(UnsupportedFile) as caught:
        extract_text(png, "photo.png", "image/png")
    assert caught.value.code == "unsupported_file" and caught.value.status == 400
    with pytest.raises(UnsupportedFile):
        extract_text(b"PK\x03\x04" + bytes(range(256)), "report.docx")


def test_no_text() -> None:
    with pytest.raises(ExtractError, match="no text"):
        extract_text(b"  \n ", "empty.txt")
    with pytest.raises(ExtractError, match="no text"):
        extract_text(b"<html><script>x()</script></html>", "empty.html")
