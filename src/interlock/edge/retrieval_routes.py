"""The routes of the Files and Vector Stores API and the permission each needs: `invoke` to read
and search, `manage_files` to change (upload, delete, create, attach, detach); the content of a
file as uploaded also needs `read_pii` (checked by the service). Without a `retrieval` section
every one of these paths answers 404 saying so."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..errors import MethodNotAllowed, NotFound
from ..security.roles import Identity, Permission
from .exchange import Exchange
from .files import FileHandlers
from .vector_stores import VectorStoreHandlers

Handler = Callable[[Exchange], Awaitable[None]]
Routed = tuple[Handler, Permission]
_ID = r"([A-Za-z0-9_.-]{1,128})"
_FILE = re.compile(rf"^/v1/files/{_ID}(/content)?$")
_STORE = re.compile(rf"^/v1/vector_stores/{_ID}(?:/(search|files)(?:/{_ID})?)?$")
_BATCH = re.compile(rf"^/v1/vector_stores/{_ID}/file_batches(?:/{_ID}(?:/(cancel|files))?)?$")
READ, MANAGE = Permission.INVOKE, Permission.MANAGE_FILES
DISABLED = "Files and vector stores are not enabled: configure a `retrieval` section"


class Admission(Protocol):
    """Requests per minute (security/limit_stage.py's `LimitStage.admit`): headers, or a 429."""

    async def admit(self, identity: Identity) -> list[tuple[bytes, bytes]]: ...


class RetrievalRoutes:
    def __init__(
        self, files: FileHandlers | None, stores: VectorStoreHandlers | None, limits: Admission | None = None
    ) -> None:
        self._files = files
        self._stores = stores
        self._limits = limits

    def _limited(self, routed: Routed) -> Routed:
        """The route counted against the caller's requests-per-minute limits (the key's and the
        tenant's) before it runs, as an inference request is: a search embeds queries, an upload
        parses and seals a body, so neither goes unmetered."""
        limits = self._limits
        if limits is None:
            return routed
        handler, permission = routed

        async def limited(ex: Exchange) -> None:
            ex.response_headers += await limits.admit(ex.identity)
            await handler(ex)

        return limited, permission

    def fixed(self) -> dict[tuple[str, str], Routed]:
        """The routes without an id in their path."""
        files, stores = self._files, self._stores
        if files is None or stores is None:
            return {(m, p): (_disabled, READ) for m, p in (("POST", "/v1/files"), ("GET", "/v1/files"),
                    ("POST", "/v1/vector_stores"), ("GET", "/v1/vector_stores"))}  # fmt: skip
        routes: dict[tuple[str, str], Routed] = {
            ("POST", "/v1/files"): (files.create, MANAGE),
            ("GET", "/v1/files"): (files.list, READ),
            ("POST", "/v1/vector_stores"): (stores.create, MANAGE),
            ("GET", "/v1/vector_stores"): (stores.list, READ),
        }
        return {where: self._limited(routed) for where, routed in routes.items()}

    def match(self, method: str, path: str) -> Routed | None:
        """The route of a path with ids, None when the path is none of ours."""
        routed = self._match(method, path)
        return routed if routed is None or routed[0] is _disabled else self._limited(routed)

    def _match(self, method: str, path: str) -> Routed | None:
        if not path.startswith(("/v1/files/", "/v1/vector_stores/")):
            return None
        batch_match = _BATCH.match(path)
        if batch_match is not None:
            if self._files is None or self._stores is None:
                return _disabled, READ
            routed = self._batch_routes(batch_match).get(method)
            if routed is None:
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            return routed
        file_match = _FILE.match(path)
        store_match = _STORE.match(path) if file_match is None else None
        if file_match is None and (store_match is None or (store_match.group(2) == "search" and store_match.group(3))):
            return None
        if self._files is None or self._stores is None:
            return _disabled, READ
        table = self._file_routes(file_match) if file_match is not None else self._store_routes(store_match)
        routed = table.get(method)
        if routed is None:
            raise MethodNotAllowed(f"Method {method} is not allowed on this path")
        return routed

    def _file_routes(self, match: re.Match[str]) -> dict[str, Routed]:
        files = self._files
        assert files is not None
        file_id = match.group(1)
        if match.group(2):
            return {"GET": (lambda ex: files.content(ex, file_id), READ)}
        return {
            "GET": (lambda ex: files.get(ex, file_id), READ),
            "DELETE": (lambda ex: files.delete(ex, file_id), MANAGE),
        }

    def _batch_routes(self, match: re.Match[str]) -> dict[str, Routed]:
        stores = self._stores
        assert stores is not None
        store_id, batch_id, sub = match.group(1), match.group(2), match.group(3)
        if batch_id is None:
            return {"POST": (lambda ex: stores.create_batch(ex, store_id), MANAGE)}
        if sub is None:
            return {"GET": (lambda ex: stores.batch(ex, store_id, batch_id), READ)}
        if sub == "cancel":
            return {"POST": (lambda ex: stores.cancel_batch(ex, store_id, batch_id), MANAGE)}
        return {"GET": (lambda ex: stores.batch_files(ex, store_id, batch_id), READ)}

    def _store_routes(self, match: re.Match[str] | None) -> dict[str, Routed]:
        stores = self._stores
        assert stores is not None and match is not None
        store_id, sub, file_id = match.group(1), match.group(2), match.group(3)
        if sub is None:
            return {
                "GET": (lambda ex: stores.get(ex, store_id), READ),
                "POST": (lambda ex: stores.update(ex, store_id), MANAGE),
                "DELETE": (lambda ex: stores.delete(ex, store_id), MANAGE),
            }
        if sub == "search":
            return {"POST": (lambda ex: stores.search(ex, store_id), READ)}
        if file_id is None:
            return {
                "GET": (lambda ex: stores.files(ex, store_id), READ),
                "POST": (lambda ex: stores.attach(ex, store_id), MANAGE),
            }
        return {
            "GET": (lambda ex: stores.file(ex, store_id, file_id), READ),
            "DELETE": (lambda ex: stores.detach(ex, store_id, file_id), MANAGE),
        }


async def _disabled(ex: Exchange) -> None:
    raise NotFound(DISABLED)
