from __future__ import annotations

import pytest

from interlock.cache.semantic_guard import mismatch, same_question

# Pairs MiniLM puts close together that ask for different answers, with the check that tells them apart.
DIFFERENT = [
    ("How do I enable 2FA?", "How do I disable 2FA?", "antonym"),
    ("Increase the font size in VS Code", "Decrease the font size in VS Code", "antonym"),
    ("Should I take the pill before eating?", "Should I take the pill after eating?", "antonym"),
    ("How do I add a user to the group?", "How do I remove a user from the group?", "antonym"),
    ("The price got higher", "The price got lower", "antonym"),
    ("How do I turn on dark mode?", "How do I turn off dark mode?", "antonym"),
    ("How do I install numpy?", "How do I uninstall numpy?", "antonym"),
    ("Is this input valid?", "Is this input invalid?", "antonym"),
    ("Why does my code compile?", "Why does my code not compile?", "negation"),
    ("Can I eat cheese while pregnant?", "Can't I eat cheese while pregnant?", "negation"),
    ("Bake bread with yeast", "Bake bread without yeast", "negation"),
    ("List the top 5 movies of 2023", "List the top 10 movies of 2023", "number"),
    ("List the top five movies", "List the top 3 movies", "number"),
    ("What is 12 times 7?", "What is 12 times 8?", "number"),
    ("What does the error 'KeyError' mean?", "What does the error 'ValueError' mean?", "quoted"),
    ("What is the capital of France?", "What is the capital of Germany?", "entity"),
    ("How to sort a list in python", "How to sort a list in java", "entity"),
    ("How do I reset my password?", "How do I reset my Gmail password?", "entity"),
    ("What is an S3 bucket?", "What is a GCS bucket?", "entity"),
    ("Convert 5 miles to km", "Convert 5 km to miles", "direction"),
    ("Convert Celsius to Fahrenheit", "Convert Fahrenheit to Celsius", "direction"),
    ("Is Python faster than Java?", "Is Java faster than Python?", "direction"),
    ("Translate this from English to French", "Translate this from French to English", "direction"),
    ("How do I convert uppercase to lowercase?", "How do I convert lowercase to uppercase?", "direction"),
    ("Who wrote Hamlet?", "When was Hamlet written?", "question"),
    ("How do I maximise a window?", "How do I minimise a window?", "antonym"),
    ("How do I pin a message?", "How do I unpin a message?", "antonym"),
]

SAME = [
    ("How do I enable 2FA?", "How can I turn on two-factor authentication?"),
    ("What is the capital of France?", "what's france's capital city"),
    ("How do I reset my password?", "How can I change my password?"),
    ("Why doesn't my code compile?", "Why does my code not compile?"),
    ("List the top five movies", "List the top 5 movies"),
    ("Convert Celsius to Fahrenheit", "How do I convert Celsius into Fahrenheit?"),
    ("how to sort a list in python", "sorting a list in Python"),
    ("What is the difference between TCP and UDP?", "Explain the difference between UDP and TCP"),
    ("Which one is better?", "Which is better?"),
    ("How To Reset My Password", "how to reset my password"),
    ("Paris is the capital of which country?", "Which country has Paris as its capital?"),
    ("Summarise this article for me.", "Please give me a summary of this article."),
    ("Where is the Eiffel Tower?", "In which city is the Eiffel Tower?"),
    ("How to start and stop nginx", "How to stop and start nginx"),
]


@pytest.mark.parametrize(("asked", "cached", "check"), DIFFERENT)
def test_near_misses_are_told_apart_by_the_check_that_sees_them(asked: str, cached: str, check: str) -> None:
    assert mismatch(asked, cached) == check
    assert mismatch(cached, asked) == check  # the same answer whichever side is cached
    assert not same_question(asked, cached)


@pytest.mark.parametrize(("asked", "cached"), SAME)
def test_paraphrases_pass(asked: str, cached: str) -> None:
    assert mismatch(asked, cached) is None
    assert mismatch(cached, asked) is None
    assert same_question(asked, cached)


def test_inflections_of_opposites_are_opposites() -> None:
    assert mismatch("I enabled it", "I disabled it") == "antonym"
    assert mismatch("stopping the server", "starting the server") == "antonym"
    assert mismatch("which is the biggest", "which is the smallest") == "antonym"
    assert mismatch("who denied it", "who allowed it") == "antonym"


def test_a_word_in_both_texts_is_no_opposite() -> None:
    # Both name start and stop: the texts differ in neither.
    assert mismatch("how to start and stop nginx", "how do I stop and start nginx") is None


def test_a_sentence_start_is_not_a_name_but_a_capital_elsewhere_is() -> None:
    assert mismatch("Explain recursion.", "Describe recursion.") is None
    asked = "We are going away this summer. What should we see in Rome on a first visit?"
    assert mismatch(asked, asked.replace("Rome", "Athens")) == "entity"
    # Title Case carries no names: every word is capitalised.
    assert mismatch("How To Reset My Password", "How To Change My Password") is None


def test_an_acronym_spelt_out_is_the_same_entity() -> None:
    assert mismatch("What is an API?", "What is an application programming interface?") is None
    assert mismatch("What is an API?", "What is an SDK?") == "entity"


def test_empty_and_identical_texts() -> None:
    assert same_question("", "")
    text = 'Can\'t I book flights from Paris to Rome on 3 May for "under $400"?'
    assert same_question(text, text)
