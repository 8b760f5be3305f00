"""multipart/form-data bodies (`POST /v1/files`): read within a limit, parsed by python-multipart.

python-multipart is the parser Starlette uses: small, pure Python with no dependencies of its
own, and driven by callbacks over bytes we already hold, so the body limit stays `read_body`'s
(the whole body is read first: an upload is at most `retrieval.max_file_bytes`, and ingestion
needs the bytes whole anyway). The standard library's `email` parser was the other candidate:
it gives the same bytes back, 14.6 times slower (228 ms against 16 ms for an 8 MiB upload,
`bench/multipart_cost.py`, figures in bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import BadRequest
from ..threads import sized
from .exchange import Exchange

MAX_PARTS = 16
MAX_FIELD_BYTES = 64 * 1024  # a text field (`purpose`); only a part with a filename may be larger


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """The parser's callbacks, collecting each part's headers and data."""

    def __init__(self, limit: int) -> None:
        self.parts: list[Part] = []
        self._limit = limit
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._current: Part | None = None

    def on_part_begin(self) -> None:
        self._headers = {}
        self._current = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise BadRequest("Each part of a multipart body needs a form-data Content-Disposition with a name")
        if len(self.parts) >= MAX_PARTS:
            raise BadRequest(f"Too many parts in the multipart body: at most {MAX_PARTS}")
        filename = options.get(b"filename")
        content_type = self._headers.get(b"content-type")
        self._current = Part(
            name.decode("utf-8", "replace"),
            filename.decode("utf-8", "replace") if filename is not None else None,
            content_type.decode("latin-1") if content_type else None,
        )
        self.parts.append(self._current)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        if part is None:
            return
        part.data += data[start:end]
        if part.filename is None and len(part.data) > MAX_FIELD_BYTES:
            raise BadRequest(f"The form field `{_shown(part.name)}` is too long", param=_shown(part.name))


async def read_form(ex: Exchange, limit: int) -> dict[str, Part]:
    """The parts of a multipart/form-data body by name (a repeated name: the last one)."""
    content_type, options = parse_options_header(ex.headers.get(b"content-type", b""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadRequest("Expected a multipart/form-data body with a boundary")
    raw = await ex.body(limit)
    return await sized(len(raw), _parse, raw, boundary, limit)  # a large upload: off the event loop


def _parse(raw: bytes, boundary: bytes, limit: int) -> dict[str, Part]:
    collector = _Collector(limit)
    callbacks = {
        "on_part_begin": collector.on_part_begin,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
        "on_part_data": collector.on_part_data,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # its callbacks' types are loose
    try:
        parser.write(raw)
        parser.finalize()
    except MultipartParseError:
        raise BadRequest("The multipart body could not be parsed") from None
    return {part.name: part for part in collector.parts}


def _shown(name: str) -> str:
    return name if name.isidentifier() and len(name) <= 64 else "(a field)"
