"""The Files and Vector Stores API's bodies, checked against the official openai client's own
types (pydantic models generated from OpenAI's spec), and the routes' permissions."""

from __future__ import annotations

import pytest
from openai.types import FileObject, VectorStore
from openai.types.vector_store_search_response import VectorStoreSearchResponse
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from interlock.edge.files import file_object
from interlock.edge.retrieval_routes import RetrievalRoutes
from interlock.edge.vector_stores import batch_object, hit_object, last_error, store_file_object, store_object
from interlock.errors import MethodNotAllowed
from interlock.retrieval.chunking import AUTO
from interlock.retrieval.types import FileCounts, FileRecord, Hit, StoreFileRecord, StoreRecord
from interlock.security.roles import Permission


def test_a_file_is_openais_file_object() -> None:
    record = FileRecord(id="file-1", tenant="t", filename="a.pdf", purpose="assistants", bytes=10, created_at=5)
    parsed = FileObject.model_validate(file_object(record), strict=True)
    assert (parsed.id, parsed.bytes, parsed.purpose, parsed.status) == ("file-1", 10, "assistants", "processed")


def test_a_store_is_openais_vector_store_with_its_counts_and_our_data_class() -> None:
    record = StoreRecord(id="vs_1", tenant="t", name="docs", data_class="restricted", created_at=5, last_active_at=6)
    shaped = store_object(record, FileCounts(in_progress=1, completed=2, failed=1), 300)
    parsed = VectorStore.model_validate(shaped, strict=True)
    assert parsed.status == "in_progress" and parsed.file_counts.total == 4 and parsed.usage_bytes == 300
    assert shaped["data_class"] == "restricted"
    assert VectorStore.model_validate(store_object(record, FileCounts(completed=1))).status == "completed"


@pytest.mark.parametrize(
    ("reason", "code"),
    [("pii_refused: EMAIL, PHONE", "invalid_file"), ("unsupported_file: expected text", "unsupported_file"),
     ("invalid_file: the file has no text (pdf)", "invalid_file"), ("server_error: OSError", "server_error"),
     ("interrupted", "server_error")],
)  # fmt: skip
def test_a_failed_store_file_names_one_of_openais_codes_and_our_reason(reason: str, code: str) -> None:
    record = StoreFileRecord(
        store_id="vs_1", file_id="file-1", tenant="t", status="failed", created_at=5, last_error=reason,
        chunking=AUTO.echo(), attributes={"lang": "en", "year": 2024, "draft": False},
    )  # fmt: skip
    parsed = VectorStoreFile.model_validate(store_file_object(record), strict=True)
    assert parsed.last_error is not None and (parsed.last_error.code, parsed.last_error.message) == (code, reason)
    assert parsed.vector_store_id == "vs_1" and parsed.id == "file-1"
    assert parsed.chunking_strategy is not None and parsed.chunking_strategy.type == "static"
    assert last_error(None) is None


def test_a_hit_is_openais_search_result() -> None:
    hit = Hit(store_id="vs_1", file_id="file-1", filename="a.txt", chunk_index=3, score=0.5, text="t")
    parsed = VectorStoreSearchResponse.model_validate(hit_object(hit), strict=True)
    assert parsed.content[0].text == "t" and parsed.score == 0.5


def test_routes_name_their_permissions_and_methods() -> None:
    class Files:
        create = list = get = delete = content = None

    class Stores:
        create = list = get = update = delete = attach = files = file = detach = search = None
        create_batch = batch = cancel_batch = batch_files = None

    routes = RetrievalRoutes(Files(), Stores())  # type: ignore[arg-type]
    fixed = routes.fixed()
    assert fixed[("POST", "/v1/files")][1] is Permission.MANAGE_FILES
    assert fixed[("GET", "/v1/vector_stores")][1] is Permission.INVOKE
    expected = {
        ("GET", "/v1/files/file-1"): Permission.INVOKE,
        ("DELETE", "/v1/files/file-1"): Permission.MANAGE_FILES,
        ("GET", "/v1/files/file-1/content"): Permission.INVOKE,
        ("POST", "/v1/vector_stores/vs_1"): Permission.MANAGE_FILES,
        ("DELETE", "/v1/vector_stores/vs_1"): Permission.MANAGE_FILES,
        ("POST", "/v1/vector_stores/vs_1/search"): Permission.INVOKE,
        ("POST", "/v1/vector_stores/vs_1/files"): Permission.MANAGE_FILES,
        ("GET", "/v1/vector_stores/vs_1/files/file-1"): Permission.INVOKE,
        ("DELETE", "/v1/vector_stores/vs_1/files/file-1"): Permission.MANAGE_FILES,
        ("POST", "/v1/vector_stores/vs_1/file_batches"): Permission.MANAGE_FILES,
        ("GET", "/v1/vector_stores/vs_1/file_batches/vsfb_1"): Permission.INVOKE,
        ("POST", "/v1/vector_stores/vs_1/file_batches/vsfb_1/cancel"): Permission.MANAGE_FILES,
        ("GET", "/v1/vector_stores/vs_1/file_batches/vsfb_1/files"): Permission.INVOKE,
    }
    for (method, path), permission in expected.items():
        routed = routes.match(method, path)
        assert routed is not None and routed[1] is permission, (method, path)
    with pytest.raises(MethodNotAllowed):
        routes.match("PUT", "/v1/vector_stores/vs_1")
    assert routes.match("POST", "/v1/vector_stores/vs_1/search/x") is None
    assert routes.match("GET", "/v1/models") is None


def test_a_batch_is_openais_file_batch_and_its_files_hide_the_batch_key() -> None:
    def record(file_id: str, status: str) -> StoreFileRecord:
        return StoreFileRecord(store_id="vs_1", file_id=file_id, tenant="t", status=status, created_at=5,  # type: ignore[arg-type]
                               chunking={**AUTO.echo(), "batch_id": "vsfb_1"})  # fmt: skip

    files = [record("file-1", "completed"), record("file-2", "in_progress"), record("file-3", "failed")]
    parsed = VectorStoreFileBatch.model_validate(batch_object("vsfb_1", "vs_1", files), strict=True)
    assert parsed.status == "in_progress" and (parsed.file_counts.in_progress, parsed.file_counts.total) == (1, 3)
    assert "batch_id" not in store_file_object(files[0])["chunking_strategy"]
