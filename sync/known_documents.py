"""Documents of contribution partitions as this process last read or wrote them, etags included.

A transactional batch of contributions replaces each document only if its etag is
unchanged and creates a document only if it does not exist, so these copies serve as
a guess, never as a fact: when another writer (another instance, a replay, a
rebuild) changed a document since, the batch fails whole and the writer reads the
partition and plans again. The common path, a partition this process wrote last,
then needs no read before its batch. Bounded: the least recently used documents
are forgotten first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

CAPACITY = 20_000  # documents; a contribution is well under 2 KB

Key = tuple[str, str, str]  # (container link, partition key, id)


class KnownDocuments:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._documents: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, container: str, partition_key: str, doc_id: str
    ) -> dict[str, Any] | None:
        with self._lock:
            document = self._documents.get((container, partition_key, doc_id))
            if document is not None:
                self._documents.move_to_end((container, partition_key, doc_id))
            return document

    def remember(
        self, container: str, partition_key: str, documents: Iterable[dict[str, Any]]
    ) -> None:
        """Keep documents as stored (each with its `_etag`)."""
        with self._lock:
            for document in documents:
                key = (container, partition_key, document["id"])
                self._documents[key] = document
                self._documents.move_to_end(key)
            while len(self._documents) > self._capacity:
                self._documents.popitem(last=False)

    def forget(self, container: str, partition_key: str, ids: Iterable[str]) -> None:
        with self._lock:
            for doc_id in ids:
                self._documents.pop((container, partition_key, doc_id), None)

    def __len__(self) -> int:
        return len(self._documents)


known_documents = KnownDocuments()  # one per process: writers are made per batch
