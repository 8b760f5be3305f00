from __future__ import annotations

import pytest

from interlock.observe.drift import LanguageIdentifier
from interlock.observe.drift.language import OTHER, UNKNOWN


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Can you help me write a cover letter for an engineering job?", "en"),
        ("What is the capital of Australia?", "en"),
        ("Pouvez-vous m'aider à écrire une lettre de motivation ?", "fr"),
        ("Quelle est la capitale de l'Australie ?", "fr"),
        ("Kannst du mir helfen, ein Anschreiben zu verfassen?", "de"),
        ("Was ist die Hauptstadt von Australien?", "de"),
        ("¿Puedes ayudarme a escribir una carta de presentación?", "es"),
        ("¿Cuál es la capital de Australia?", "es"),
        ("PLEASE SUMMARISE THE FOLLOWING REPORT ABOUT QUARTERLY REVENUE.", "en"),
        ("这是一个关于季度收入的报告，请帮我总结一下。", "zh"),  # noqa: RUF001 - a Chinese sentence has Chinese commas
    ],
)
def test_language_of_clear_sentences(language: LanguageIdentifier, text: str, code: str) -> None:
    assert language(text) == code


def test_language_outside_the_list_and_unsure_text(language: LanguageIdentifier) -> None:
    assert language("Hej, kan du hjälpa mig att skriva ett brev till min hyresvärd?") == OTHER  # Swedish
    assert language("") == UNKNOWN
    assert language("yes") == UNKNOWN
    assert language("line one\nline two of an English text about the weather today") == "en"
    assert LanguageIdentifier(["en"])("Quelle est la capitale de l'Australie ?") == OTHER
