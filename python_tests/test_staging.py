"""The staging layer's shared macros (macros/staging.sql), rendered by dbt and run on
DuckDB and PostgreSQL, and the rules around them: one list of quarantine reasons per
raw table, shown in the docs, and no model outside staging reading a source."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import jinja2
import pytest

from python_tests.conftest import PROJECT_DIR
from runner.config import Settings, load_settings
from runner.dbt_invoke import invoke_dbt
from runner.warehouse import connect

# (macro call on the column `value`, input text, expected result)
GUARDED_CASTS = [
    # decimal(18, 2): at most 16 integer digits and 2 decimals, what the type holds exactly
    (
        "guarded_cast('value', 'decimal', precision=18, scale=2)",
        "1234567890123456",
        Decimal("1234567890123456"),
    ),
    (
        "guarded_cast('value', 'decimal', precision=18, scale=2)",
        "9999999999999999.99",
        Decimal("9999999999999999.99"),
    ),
    (
        "guarded_cast('value', 'decimal', precision=18, scale=2)",
        "-9999999999999999.99",
        Decimal("-9999999999999999.99"),
    ),
    ("guarded_cast('value', 'decimal', precision=18, scale=2)", "12345678901234567", None),
    ("guarded_cast('value', 'decimal', precision=18, scale=2)", "1.234", None),
    ("guarded_cast('value', 'decimal', precision=18, scale=2)", "-0.01", Decimal("-0.01")),
    ("guarded_cast('value', 'decimal', precision=18, scale=2)", "12.", None),
    ("guarded_cast('value', 'decimal', precision=18, scale=2)", "1e5", None),
    ("guarded_cast('value', 'decimal', precision=18, scale=2)", None, None),
    # decimal(18, 4) and a non-negative decimal(18, 6)
    (
        "guarded_cast('value', 'decimal', precision=18, scale=4)",
        "12345678901234.5678",
        Decimal("12345678901234.5678"),
    ),
    ("guarded_cast('value', 'decimal', precision=18, scale=4)", "123456789012345", None),
    (
        "guarded_cast('value', 'decimal', precision=18, scale=6, signed=false)",
        "123456789012.123456",
        Decimal("123456789012.123456"),
    ),
    (
        "guarded_cast('value', 'decimal', precision=18, scale=6, signed=false)",
        "1234567890123",
        None,
    ),
    ("guarded_cast('value', 'decimal', precision=18, scale=6, signed=false)", "-1", None),
    # bigint and integer: every value in their range, nothing beyond
    ("guarded_cast('value', 'bigint', signed=false)", "9223372036854775807", 9223372036854775807),
    ("guarded_cast('value', 'bigint', signed=false)", "9223372036854775808", None),
    ("guarded_cast('value', 'bigint', signed=false)", "99999999999999999999", None),
    ("guarded_cast('value', 'bigint', signed=false)", "007", 7),
    ("guarded_cast('value', 'bigint', signed=false)", "-5", None),
    ("guarded_cast('value', 'bigint')", "-9223372036854775808", -9223372036854775808),
    ("guarded_cast('value', 'bigint')", "-9223372036854775809", None),
    ("guarded_cast('value', 'bigint')", "12a", None),
    ("guarded_cast('value', 'integer', signed=false)", "2147483647", 2147483647),
    ("guarded_cast('value', 'integer', signed=false)", "2147483648", None),
    ("guarded_cast('value', 'smallint')", "-32768", -32768),
    ("guarded_cast('value', 'smallint')", "32768", None),
    # text clean-up
    ("clean_text('value')", "  a b  ", "a b"),
    ("clean_text('value')", "   ", None),
    ("clean_text('value')", "", None),
    ("clean_text('value')", None, None),
]

DATE_AND_TIME = [
    ("2016-02-29", "23:59:59", datetime(2016, 2, 29, 23, 59, 59)),
    ("2017-02-29", "00:00:00", None),
    ("2017-01-01", "24:00:00", None),
    ("2017/01/01", "10:00:00", None),
    ("2017-01-01", "10:00", None),
    ("2017-01-01", None, None),
]


def sql_text(value: str | None) -> str:
    return "cast(null as varchar)" if value is None else "'" + value.replace("'", "''") + "'"


def compiled(settings: Settings, sql: str) -> str:
    result = invoke_dbt(settings, ["compile"], ["--inline", sql, "--quiet"])
    assert result.success, result.exception
    return result.result.results[0].node.compiled_code


def test_staging_macros_on_both_engines(settings: Settings):
    """Every case in one row, a column each (so each keeps its own type), compiled once."""
    inputs = [f"{sql_text(text)} as v{i}" for i, (_, text, _) in enumerate(GUARDED_CASTS)]
    inputs += [
        f"{sql_text(day)} as d{i}, {sql_text(time)} as t{i}"
        for i, (day, time, _) in enumerate(DATE_AND_TIME)
    ]
    outputs = [
        f"{{{{ customer_analytics.{call.replace('value', f'v{i}')} }}}} as r{i}"
        for i, (call, _, _) in enumerate(GUARDED_CASTS)
    ]
    outputs += [
        f"{{{{ customer_analytics.parse_date_and_time('d{i}', 't{i}') }}}} as dt{i}"
        for i in range(len(DATE_AND_TIME))
    ]
    sql = "select " + ",\n".join(outputs) + " from (select " + ", ".join(inputs) + ") as inputs"
    # Compiled before connecting (DuckDB has one writer per file). The runner's query()
    # takes `?` for a parameter, so the regular expressions' `?` (only ever "optional"
    # here) are written as the equivalent `{0,1}`.
    query = compiled(settings, sql).replace("?", "{0,1}")
    with connect(settings) as warehouse:
        _, rows = warehouse.query(query)
    (row,) = rows
    for (call, text, expected), value in zip(GUARDED_CASTS, row[: len(GUARDED_CASTS)], strict=True):
        assert value == expected, (call, text, value)
        if expected is not None:
            assert type(value) is type(expected), (call, text, value)
    for (day, time, expected), value in zip(DATE_AND_TIME, row[len(GUARDED_CASTS) :], strict=True):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        assert value == expected, (day, time, value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("guarded_cast('v', 'float')", "guarded_cast: unknown type 'float'"),
        ("guarded_cast('v', 'decimal', precision=2, scale=3)", "decimal needs 1 <= precision"),
        ("guarded_cast('v', 'decimal')", "decimal needs 1 <= precision"),
        ("quarantine_reasons('no_such_table')", "quarantine_reasons: no list for 'no_such_table'"),
        (
            "first_problem([('made_up', 'true', \"'x'\")], 'web_events')",
            "reason 'made_up' is not in quarantine_reasons('web_events')",
        ),
    ],
)
def test_a_macro_misused_fails_to_compile_and_says_why(
    capsys: pytest.CaptureFixture[str], call: str, message: str
):
    settings = load_settings(target="duckdb")  # compiling, not running: one engine is enough
    sql = f"select {{{{ customer_analytics.{call} }}}}"
    result = invoke_dbt(settings, ["compile"], ["--inline", sql])
    assert not result.success
    assert message in capsys.readouterr().out


def quarantine_reasons(table: str) -> dict[str, str]:
    """The macro quarantine_reasons rendered with plain Jinja (its body is a literal)."""
    text = (PROJECT_DIR / "macros" / "quarantine_reasons.sql").read_text(encoding="utf-8")
    text = text[: text.index("{% test")]
    captured: dict[str, dict[str, str]] = {}

    def give_back(value: dict[str, str]) -> str:
        captured["value"] = value
        return ""

    environment = jinja2.Environment()
    environment.globals["return"] = give_back
    environment.from_string(text + "{{ quarantine_reasons('" + table + "') }}").render()
    return captured["value"]


def doc_blocks() -> dict[str, str]:
    blocks = {}
    for path in (PROJECT_DIR / "models" / "staging").glob("*/_*__docs.md"):
        text = path.read_text(encoding="utf-8")
        for name, body in re.findall(r"{% docs (\w+) %}\n(.*?){% enddocs %}", text, re.DOTALL):
            blocks[name] = body
    return blocks


def test_each_quarantine_lists_one_set_of_reasons_that_the_docs_show():
    blocks = doc_blocks()
    models = sorted(Path(PROJECT_DIR / "models" / "staging").glob("*/_*__models.yml"))
    tables = set()
    for path in models:
        tables |= set(re.findall(r"source_table: (\w+)", path.read_text(encoding="utf-8")))
    assert len(tables) == 12, tables  # every raw table that lands files has a quarantine
    for table in sorted(tables):
        reasons = quarantine_reasons(table)
        shown = re.findall(
            r"^- `(\w+)`: (.*)$", blocks[f"{table}_quarantine_reasons"], re.MULTILINE
        )
        assert shown == list(reasons.items()), table


def test_only_staging_reads_sources():
    readers = [
        path.relative_to(PROJECT_DIR).as_posix()
        for path in (PROJECT_DIR / "models").rglob("*.sql")
        if "source(" in path.read_text(encoding="utf-8")
    ]
    assert readers and all(path.startswith("models/staging/") for path in readers), readers


def test_no_hand_written_digit_limits_in_staging():
    """Accepted digits come from the target type (numeric_pattern), never a regex by hand."""
    for path in (PROJECT_DIR / "models" / "staging").rglob("*.sql"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\[0-9\]\{1,\d+\}", text), path
