"""Files, vector stores and retrieval-augmented generation (issue 15): the Catalog Protocol
(`types.py`), its SQLite and PostgreSQL implementations, ingestion, and the retrieval stage."""
