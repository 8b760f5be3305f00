"""A VectorStores service over the real SQLite catalog, the real MiniLM embedder and a real DLP
stage (patterns, an in-memory vault): what ingestion and retrieval tests run against."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from interlock.observe.metrics import Metrics
from interlock.retrieval.chunking import AUTO, Chunker
from interlock.retrieval.extract import extract_text
from interlock.retrieval.ingest import Ingestor
from interlock.retrieval.sealed import Sealed
from interlock.retrieval.service import VectorStores
from interlock.retrieval.sqlite_catalog import SqliteCatalog
from interlock.security.dlp import DlpStage, Policy
from interlock.security.pii.detector import PatternDetector
from interlock.security.pii.vault import MemoryVaultStore, TokenVault
from interlock.security.roles import ALL, Identity, Permission
from tests.support.embedder import minilm

ADMIN = Identity(subject="a", kind="key", tenant="acme", roles=("admin",), permissions=ALL, max_class="restricted")
USER = Identity(subject="u", kind="key", tenant="acme", roles=("user",),
                permissions=frozenset({Permission.INVOKE, Permission.MANAGE_FILES}))  # fmt: skip
OTHER = Identity(subject="o", kind="key", tenant="globex", roles=("user",), permissions=USER.permissions)


@dataclass
class Parts:
    service: VectorStores
    catalog: SqliteCatalog
    ingestor: Ingestor
    audit: list[dict[str, object]]
    directory: Path


class Audit(list[dict[str, object]]):
    def record(self, event: dict[str, object]) -> None:
        self.append(event)


def make_parts(
    directory: Path, policy: Policy | None = None, queue_size: int = 64, clock: Callable[[], float] = time.time
) -> Parts:
    """`clock`: the ingestor's, which its leases follow (a later one stands for a later process)."""
    policy = policy or Policy("docs", actions={"EMAIL": "tokenize"}, classify={"US_SSN": "restricted"})
    vault = TokenVault(b"v" * 32, MemoryVaultStore(), ttl=60)
    dlp = DlpStage(PatternDetector(), {"docs": policy}, {}, vault, Metrics(CollectorRegistry()))
    catalog = SqliteCatalog(directory)
    seal = Sealed(b"s" * 32)

    async def screen(texts: list[str], scope: str) -> object:
        return await dlp.screen_texts("docs", texts, scope, ttl=3600)

    ingestor = Ingestor(
        catalog, seal, extract_text, Chunker().split, minilm(), screen, queue_size=queue_size, clock=clock
    )
    audit = Audit()
    service = VectorStores(catalog, ingestor, minilm(), seal, AUTO, vault=vault, screen=screen, audit=audit)
    return Parts(service, catalog, ingestor, audit, directory)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    made = make_parts(tmp_path / "vectors")
    await made.catalog.start()
    await made.ingestor.start()
    yield made
    await made.ingestor.close()
    await made.catalog.close()
