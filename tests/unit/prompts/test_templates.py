"""TemplateBook: compiled once, rendered with the request's variables, the 400s it raises (naming
templates and variables, never values), and the system part kept by its variables."""

from __future__ import annotations

import pytest
from jinja2 import meta

from interlock.config import TemplateSettings
from interlock.errors import BadRequest
from interlock.prompts.templates import TemplateBook, _Part, environment, template_problem

SECRET = "jane.doe@example.com"
BOOK = {
    "support-summary": TemplateSettings(
        system="You summarise tickets for {{ team }}. Answer in {{ language }}.",
        user="Summarise this ticket:\n{{ ticket }}",
    ),
    "fixed": TemplateSettings(system="You are terse.", user="Q: {{ question }}"),
    "user-only": TemplateSettings(user="{{ a }} & <b>{{ b }}</b>"),
}


def book(**kwargs: int) -> TemplateBook:
    return TemplateBook(BOOK, **kwargs)


def variables(**overrides: object) -> dict[str, object]:
    return {"team": "billing", "language": "English", "ticket": "Refund please", **overrides}


def test_renders_both_parts_with_the_variables() -> None:
    out = book().render("support-summary", variables())
    assert out.system == "You summarise tickets for billing. Answer in English."
    assert out.user == "Summarise this ticket:\nRefund please"
    # Text, not HTML: nothing is escaped; a template without a system part has none.
    plain = book().render("user-only", {"a": "x<y", "b": "'q'"})
    assert (plain.system, plain.user) == (None, "x<y & <b>'q'</b>")


def test_numbers_and_booleans_render_and_are_told_apart() -> None:
    b = TemplateBook({"t": TemplateSettings(system="{{ v }}")})
    assert [b.render("t", {"v": v}).system for v in (1, 1.0, True, "1", -0.0, 0.0)] == [
        "1", "1.0", "True", "1", "-0.0", "0.0"
    ]  # fmt: skip
    # 1 == 1.0 == True and -0.0 == 0.0 as dict keys: the cache still keeps them apart.
    assert b.stats.system_rendered == 6


def test_an_unknown_template_is_a_400_naming_it_but_not_what_is_no_name() -> None:
    with pytest.raises(BadRequest) as err:
        book().render("support-sumary", variables())
    assert err.value.param == "template.name" and "`support-sumary`" in err.value.message
    with pytest.raises(BadRequest) as err:
        book().render(f"summary for {SECRET}", variables())
    assert SECRET not in err.value.message and err.value.param == "template.name"


def test_missing_variables_are_named_and_no_value_is_echoed() -> None:
    with pytest.raises(BadRequest) as err:
        book().render("support-summary", {"ticket": SECRET})
    assert err.value.param == "template.variables"
    assert "`language`, `team`" in err.value.message and "support-summary" in err.value.message
    assert SECRET not in err.value.message


def test_variables_the_template_does_not_use_are_refused_by_name() -> None:
    with pytest.raises(BadRequest) as err:
        book().render("support-summary", variables(tikcet=SECRET, **{SECRET: "x", "a b": 1}))
    message = err.value.message
    assert "`tikcet`" in message and "2 other names" in message and SECRET not in message
    assert err.value.param == "template.variables"


@pytest.mark.parametrize("value", [None, [SECRET], {"email": SECRET}])
def test_variables_are_strings_numbers_or_booleans(value: object) -> None:
    with pytest.raises(BadRequest) as err:
        book().render("support-summary", variables(ticket=value))
    assert err.value.param == "template.variables.ticket" and SECRET not in err.value.message


def test_a_failing_render_is_a_400_without_values() -> None:
    b = TemplateBook({"t": TemplateSettings(user="{{ n + 1 }}"), "s": TemplateSettings(user="{{ x.__class__ }}")})
    assert b.render("t", {"n": 41}).user == "42"
    with pytest.raises(BadRequest) as err:
        b.render("t", {"n": SECRET})
    assert "TypeError" in err.value.message and SECRET not in err.value.message
    # The sandbox: no reaching into Python through a template.
    with pytest.raises(BadRequest) as err:
        b.render("s", {"x": SECRET})
    assert "SecurityError" in err.value.message and SECRET not in err.value.message


def test_jinja_globals_are_not_variables() -> None:
    b = TemplateBook({"t": TemplateSettings(user="{% for i in range(n) %}{{ i }}{% endfor %}")})
    assert b.render("t", {"n": 3}).user == "012"


def test_the_same_system_variables_render_the_system_part_once() -> None:
    b = book()
    first = b.render("support-summary", variables(ticket="one"))
    second = b.render("support-summary", variables(ticket="two"))
    assert second.user == "Summarise this ticket:\ntwo"  # the user part is the request's own
    assert second.system is first.system  # the very same text, its hash computed once
    assert (b.stats.rendered, b.stats.system_rendered, b.stats.system_reused) == (2, 1, 1)
    other = b.render("support-summary", variables(team="sales"))
    assert other.system == "You summarise tickets for sales. Answer in English."
    assert b.stats.system_rendered == 2


def test_a_system_part_without_variables_is_rendered_at_start_only() -> None:
    b = book()
    texts = [b.render("fixed", {"question": q}).system for q in ("a", "b", "c")]
    assert texts == ["You are terse."] * 3 and texts[0] is texts[2]
    assert (b.stats.system_rendered, b.stats.system_reused) == (0, 3)


def test_the_system_cache_is_bounded_in_entries_and_characters() -> None:
    b = book(cache_entries=2)
    for team in ("a", "b", "c", "a"):  # `a` was the least recently used when `c` came
        b.render("support-summary", variables(team=team))
    assert b.stats.system_rendered == 4
    b.render("support-summary", variables(team="a"))  # now kept
    assert b.stats.system_rendered == 4
    # An entry over a sixteenth of the character budget is rendered every time, not kept.
    small = book(cache_chars=16 * 80)
    for _ in range(2):
        small.render("support-summary", variables(team="x" * 80))
    assert small.stats.system_rendered == 2
    for _ in range(2):
        small.render("support-summary", variables(team="x"))
    assert small.stats.system_rendered == 3
    for i in range(30):  # about 56 characters each: 22 fit in 1,280
        small.render("support-summary", variables(team=f"t{i}"))
    before = small.stats.system_rendered
    small.render("support-summary", variables(team="t29"))
    assert small.stats.system_rendered == before
    small.render("support-summary", variables(team="t0"))
    assert small.stats.system_rendered == before + 1
    off = book(cache_entries=0)
    for _ in range(2):
        off.render("support-summary", variables())
    assert off.stats.system_rendered == 2


def test_template_problem_names_the_line_of_a_syntax_error() -> None:
    assert template_problem("Hello {{ name }}") is None
    assert template_problem("Hello {{ name") == (
        "does not compile: line 1: unexpected end of template, expected 'end of print statement'."
    )
    assert (
        template_problem("a\n{{ x | no_such_filter }}") == "does not compile: line 2: No filter named 'no_such_filter'."
    )
    assert template_problem("{{ 1 / 0 }}") == "does not render: ZeroDivisionError"


PLAIN = [
    "Hello {{ name }}!",
    "{{ name }}{{ n }}",
    "Line one\n  {{ name }}\n\nlast line {{ flag }}\n",  # Jinja drops one trailing newline
    "Grüße, {{ name }} — {{ n }} € 😀",
    "{{name}} and {{   n   }} {# a comment #} {{ flag }}",
    "{% raw %}{{ literal }}{% endraw %} {{ name }}",
]
NOT_PLAIN = ["{{ name | upper }} {{ n + 1 }}", "{% if flag %}{{ name }}{% endif %}", "{{ name ~ '!' }} {{ 'x' }}"]


@pytest.mark.parametrize("source", PLAIN + NOT_PLAIN)
@pytest.mark.parametrize(
    "values", [{"name": "Ada", "n": 3, "flag": True}, {"name": "<b>&amp;", "n": -0.0, "flag": False}]
)
def test_plain_substitutions_render_as_jinja_does(source: str, values: dict[str, object]) -> None:
    env = environment()
    used = {k: v for k, v in values.items() if k in meta.find_undeclared_variables(env.parse(source))}
    assert (_Part(env, source).pieces is not None) == (source in PLAIN)  # which way it renders
    book = TemplateBook({"t": TemplateSettings(user=source)})
    assert book.render("t", used).user == env.from_string(source).render(used)
