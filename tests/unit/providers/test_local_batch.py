"""The batch scheduler's pure parts: the stop-string holdback and which requests it takes."""

from __future__ import annotations

import pytest

from interlock.errors import BadRequest
from interlock.providers.local_batch import StopText, batchable, prompt_text


def feed_all(stop: StopText, pieces: list[bytes]) -> tuple[list[str], bool]:
    out = []
    for piece in pieces:
        text, stopped = stop.feed(piece)
        out.append(text)
        if stopped:
            return out, True
    out.append(stop.flush())
    return out, False


def test_text_passes_through_without_stop_strings() -> None:
    assert feed_all(StopText([]), [b"Hello", b" there"]) == (["Hello", " there", ""], False)


def test_text_that_may_begin_a_stop_string_is_held_until_it_cannot() -> None:
    out, stopped = feed_all(StopText(["END"]), [b"one E", b"N", b"x two"])
    assert out == ["one ", "", "ENx two", ""] and not stopped


def test_the_answer_ends_before_the_first_stop_string_even_across_pieces() -> None:
    out, stopped = feed_all(StopText(["END", ","]), [b"a E", b"ND b, c"])
    assert "".join(out) == "a " and stopped
    out, stopped = feed_all(StopText(["END", ","]), [b"a, b END"])
    assert out == ["a"] and stopped


def test_a_character_split_across_tokens_waits_for_its_last_byte() -> None:
    e_acute = "é".encode()
    out, _ = feed_all(StopText([]), [b"caf" + e_acute[:1], e_acute[1:] + b"!"])
    assert out == ["caf", "é!", ""]


def test_an_incomplete_character_at_the_end_is_dropped() -> None:
    assert feed_all(StopText([]), [b"ok", "é".encode()[:1]]) == (["ok", "", ""], False)


def test_held_text_is_let_out_when_generation_ends() -> None:
    assert feed_all(StopText(["###"]), [b"x #", b"#"]) == (["x ", "", "##"], False)


def test_requests_the_single_path_must_serve() -> None:
    assert batchable({"messages": [], "temperature": 0, "seed": 1, "stop": ["x"], "top_p": 0.5})
    for field in ("logprobs", "top_logprobs", "tools", "response_format", "logit_bias", "echo", "suffix"):
        assert not batchable({"messages": [], field: True}), field
    assert batchable({"messages": [], "logprobs": False})


def test_completions_take_one_prompt_string() -> None:
    assert prompt_text({"prompt": "a"}) == prompt_text({"prompt": ["a"]}) == "a"
    for bad in (["a", "b"], [1, 2], None, 3):
        with pytest.raises(BadRequest):
            prompt_text({"prompt": bad})
