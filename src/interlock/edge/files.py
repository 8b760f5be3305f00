"""/v1/files: upload (multipart/form-data: `file`, `purpose`), list, get, delete, content.

Shaped as OpenAI's `FileObject`; a file of another tenant is 404. Uploads and deletions need
`manage_files`, reading `invoke`, the content as uploaded `read_pii` (retrieval/service.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import BadRequest
from ..retrieval.service import VectorStores
from ..retrieval.types import FileRecord
from ..threads import sized
from .exchange import Exchange
from .forms import read_form
from .http import encode_headers, send_bytes
from .pages import page, query

PURPOSES = ("assistants", "user_data")
MULTIPART_OVERHEAD = 64 * 1024  # the form's own bytes beside the file's
MAX_FILENAME = 255


def file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id, "object": "file", "bytes": record.bytes, "created_at": record.created_at,
        "filename": record.filename, "purpose": record.purpose, "status": "processed", "expires_at": None,
        "status_details": None,
    }  # fmt: skip


class FileHandlers:
    def __init__(self, service: VectorStores, max_file_bytes: int) -> None:
        self._service = service
        self._max = max_file_bytes

    async def create(self, ex: Exchange) -> None:
        form = await read_form(ex, self._max + MULTIPART_OVERHEAD)
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or upload.filename is None:
            raise BadRequest("Missing the `file` part (a file with a filename)", param="file")
        if purpose is None:
            raise BadRequest("Missing the `purpose` field", param="purpose")
        purpose_text = purpose.data.decode("utf-8", "replace")
        if purpose_text not in PURPOSES:
            raise BadRequest(f"`purpose` must be one of {', '.join(PURPOSES)}", param="purpose")
        if len(upload.data) > self._max:
            raise BadRequest(f"The file is larger than the limit of {self._max} bytes", param="file")
        name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:MAX_FILENAME]
        if not name:
            raise BadRequest("The file needs a name", param="file")
        content = await sized(len(upload.data), bytes, upload.data)
        record = await self._service.upload(ex.identity, name, purpose_text, content)
        await ex.json(200, orjson.dumps(file_object(record)))

    async def list(self, ex: Exchange) -> None:
        q = query(ex, default_limit=10_000, max_limit=10_000)
        purpose = q.params.get("purpose") or None
        records = await self._service.files(ex.identity, purpose, q.limit + 1, q.after, q.order)
        await ex.json(200, page(records, q.limit, file_object, lambda r: r.id))

    async def get(self, ex: Exchange, file_id: str) -> None:
        await ex.json(200, orjson.dumps(file_object(await self._service.file(ex.identity, file_id))))

    async def delete(self, ex: Exchange, file_id: str) -> None:
        await self._service.delete_file(ex.identity, file_id)
        await ex.json(200, orjson.dumps({"id": file_id, "object": "file", "deleted": True}))

    async def content(self, ex: Exchange, file_id: str) -> None:
        _, data = await self._service.content(ex.identity, file_id)
        ex.started = ex.done = True
        headers = encode_headers(ex.request_id, ex.response_headers)
        await send_bytes(ex.send, 200, data, headers, (b"content-type", b"application/octet-stream"))
