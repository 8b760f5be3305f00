"""Files at rest: sealed bytes hold nothing of the upload, open only under the same key, tenant
and file id."""

from __future__ import annotations

import pytest

from interlock.retrieval.sealed import Plain, Sealed, SealError

SECRET = b"alice@example.com 4111 1111 1111 1111"


def test_sealed_bytes_do_not_contain_the_content_and_open_back() -> None:
    seal = Sealed(b"k" * 32)
    stored = seal.seal("t1", "file-1", SECRET)
    assert b"alice" not in stored and b"4111" not in stored
    assert seal.open("t1", "file-1", stored) == SECRET


@pytest.mark.parametrize(("tenant", "file_id", "key"), [("t2", "file-1", b"k" * 32), ("t1", "file-2", b"k" * 32),
                                                       ("t1", "file-1", b"j" * 32)])  # fmt: skip
def test_another_tenant_file_or_key_does_not_open_them(tenant: str, file_id: str, key: bytes) -> None:
    stored = Sealed(b"k" * 32).seal("t1", "file-1", SECRET)
    with pytest.raises(SealError) as raised:
        Sealed(key).open(tenant, file_id, stored)
    assert "alice" not in str(raised.value)


def test_plain_keeps_the_bytes() -> None:
    assert Plain().open("t", "f", Plain().seal("t", "f", SECRET)) == SECRET
