"""A file's bytes -> its text, for ingestion: plain text, Markdown, HTML and PDF.

The kind comes from the file name's extension, else the content type, else the bytes themselves
(a PDF header, an HTML root, text that decodes as UTF-8). Text and Markdown are kept as written
(Markdown's markup reads well enough to an embedder and to a model); HTML keeps its visible text,
with block elements on lines of their own and no script, style or template content (the standard
library's `html.parser`); a PDF gives the text of its pages (pypdf), pages apart by a blank line.

Anything else, or input that cannot be read, raises `ExtractError`, a 400 whose message is a
reason (the kind expected, what went wrong) and never a piece of the document: it becomes a store
file's `last_error`, which the API returns and the audit may log.
"""

from __future__ import annotations

import codecs
import io
import re
from html.parser import HTMLParser
from typing import Literal

from interlock.errors import BadRequest

Kind = Literal["text", "markdown", "html", "pdf"]

_EXTENSIONS: dict[str, Kind] = {
    "txt": "text", "text": "text", "log": "text", "csv": "text", "tsv": "text", "json": "text",
    "jsonl": "text", "xml": "text", "yaml": "text", "yml": "text", "rst": "text", "py": "text",
    "md": "markdown", "markdown": "markdown",
    "html": "html", "htm": "html", "xhtml": "html",
    "pdf": "pdf",
}  # fmt: skip
_CONTENT_TYPES: dict[str, Kind] = {
    "text/plain": "text", "text/csv": "text", "application/json": "text", "text/markdown": "markdown",
    "text/x-markdown": "markdown", "text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf",
}  # fmt: skip
_SKIPPED = frozenset({"script", "style", "template", "noscript"})
_BLOCKS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
     "section", "article", "header", "footer", "nav", "aside", "main", "blockquote", "pre", "hr", "figure",
     "figcaption", "form", "title", "caption", "address", "details", "summary"}
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
_HTML_SNIFF = re.compile(rb"^\s*(<!doctype\s+html|<html[\s>])", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class ExtractError(BadRequest):
    """The file cannot be turned into text; the message says why, never what the file says."""

    code = "invalid_file"


class UnsupportedFile(ExtractError):
    code = "unsupported_file"


def kind_of(filename: str, content_type: str | None, content: bytes) -> Kind:
    """Which reader a file needs, or `UnsupportedFile`."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in _CONTENT_TYPES:
        return _CONTENT_TYPES[mime]
    if content.startswith(b"%PDF-"):
        return "pdf"
    if _HTML_SNIFF.match(content[:1024]):
        return "html"
    if (mime.startswith("text/") or mime in ("", "application/octet-stream")) and _looks_like_text(content):
        return "text"
    raise UnsupportedFile("unsupported file type: expected text, Markdown, HTML or PDF")


def extract_text(content: bytes, filename: str, content_type: str | None = None) -> str:
    """The text of a file, newlines normalised, stripped; `ExtractError` when it has none."""
    kind = kind_of(filename, content_type, content)
    if kind == "pdf":
        text = _pdf_text(content)
    elif kind == "html":
        text = html_text(_decode_html(content, content_type))
    else:
        text = _decode_text(content)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ExtractError(f"the file has no text ({kind})")
    return text


def _looks_like_text(content: bytes) -> bool:
    try:
        _decode_text(content[:4096], final=False)
    except ExtractError:
        return False
    return True


def _decode_text(content: bytes, *, final: bool = True) -> str:
    """UTF-8 (a byte-order mark also allows UTF-16); a NUL byte or invalid UTF-8 is refused."""
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
        if b"\x00" in content:
            raise ExtractError("the file is binary, not text (it holds NUL bytes)")
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        return decoder.decode(content, final=final)
    except UnicodeDecodeError:
        raise ExtractError(f"the file is not valid {encoding.removesuffix('-sig').upper()} text") from None


def _decode_html(content: bytes, content_type: str | None) -> str:
    """HTML's bytes by their byte-order mark, the content type's charset, a <meta> charset, or UTF-8;
    bytes invalid in that encoding become U+FFFD (browsers do the same)."""
    if content.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_text(content)
    charset = None
    if content_type and "charset=" in content_type.lower():
        charset = content_type.lower().split("charset=", 1)[1].split(";", 1)[0].strip(" \"'")
    else:
        meta = _META_CHARSET.search(content[:4096])
        charset = meta.group(1).decode("ascii").lower() if meta else None
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = None
    return content.decode(charset or "utf-8", errors="replace")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0  # depth inside elements whose content is not text
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
            self._pre += tag == "pre"
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:  # <br/>, <hr/>
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_text(html: str) -> str:
    """The visible text of an HTML document: no script, style, template or noscript content; block
    elements on their own lines; runs of spaces collapsed outside <pre>."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pdf_text(content: bytes) -> str:
    import pypdf

    # The one place pypdf's many exception types (and the struct and zlib errors it lets through
    # on damaged files) become ours: a reason, never the file's content.
    try:
        reader = pypdf.PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractError("the PDF is encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ExtractError:
        raise
    except Exception as exc:  # a damaged or unsupported PDF, whichever part of pypdf notices
        raise ExtractError(f"the PDF cannot be read ({type(exc).__name__})") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise ExtractError("the PDF has no extractable text (scanned pages need OCR, which is not done)")
    return text
