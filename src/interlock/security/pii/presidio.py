"""Microsoft Presidio as another detector behind the same interface (`pip install
'interlock[presidio]'`): its recognizers add entity types the pattern pass does not have
(CRYPTO, US_DRIVER_LICENSE, MEDICAL_LICENSE, ...). Turned on per policy (`presidio: true`); slow,
so the DLP stage runs it on a worker thread. Its NLP engine is spaCy with the same model as
`ner`. Type names are mapped onto ours where they mean the same thing.
"""

from __future__ import annotations

import threading
from typing import Any

from .detector import Entity

SAME_AS_OURS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "LOCATION": "LOCATION",
    "PERSON": "PERSON",
}
IGNORED = {"DATE_TIME", "NRP", "ORGANIZATION", "URL"}  # too broad to act on by default


class PresidioDetector:
    name = "presidio"

    def __init__(self, model: str, threshold: float = 0.5) -> None:
        self._model = model
        self._threshold = threshold
        self._engine: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._engine is None:
                from presidio_analyzer import AnalyzerEngine
                from presidio_analyzer.nlp_engine import NlpEngineProvider

                nlp = NlpEngineProvider(
                    nlp_configuration={
                        "nlp_engine_name": "spacy",
                        "models": [{"lang_code": "en", "model_name": self._model}],
                    }
                ).create_engine()
                self._engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])

    def detect(self, text: str) -> list[Entity]:
        if self._engine is None:
            self.load()
        return [
            Entity(SAME_AS_OURS.get(r.entity_type, r.entity_type), r.start, r.end, float(r.score))
            for r in self._engine.analyze(text=text, language="en", score_threshold=self._threshold)
            if r.entity_type not in IGNORED
        ]
