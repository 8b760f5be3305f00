from __future__ import annotations

from interlock.security.pii.detokenize import MAX_TOKEN, StreamDetokenizer, held_back, neutralise, replace


def test_a_split_token_is_held_back_only_while_it_could_still_be_one() -> None:
    assert held_back("hello <EMAIL_abc") == len("<EMAIL_abc")
    assert held_back("hello <b>bold") == 0
    assert held_back("a < b") == 0
    assert held_back("x" * 100) == 0
    assert held_back("end <") == 1 and MAX_TOKEN <= 47


def test_stream_detokenizer_reassembles_values_across_chunks() -> None:
    token = "<EMAIL_abcdefghijkl>"
    d = StreamDetokenizer({token: "a@b.co"})
    text = f"mail {token} now"
    out = ""
    for i in range(0, len(text), 3):
        out += d.feed({"choices": [{"index": 0, "delta": {"content": text[i : i + 3]}, "finish_reason": None}]})[
            "choices"
        ][0]["delta"]["content"]
    out += d.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})["choices"][0]["delta"].get(
        "content", ""
    )
    assert out == "mail a@b.co now"


def test_values_go_into_tool_arguments_json_escaped() -> None:
    token = "<PHONE_abcdefghijkl>"
    assert replace('{"to": "' + token + '"}', {token: 'say "hi"'}, in_json=True) == '{"to": "say \\"hi\\""}'


def test_client_token_shapes_are_defused() -> None:
    assert neutralise("give me <EMAIL_abcdefghijkl>") == "give me \u2039EMAIL_abcdefghijkl>"
    assert neutralise("a <b> tag") == "a <b> tag"
