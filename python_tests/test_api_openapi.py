"""The API's OpenAPI description matches what it answers, and the listings and totals
match the marts, on a warehouse built from the bundled sample (both engines).

Schemathesis generates requests from the description (valid and invalid parameters,
a bounded number per route, derandomized so a run is repeatable), sends them with the
tests' key and checks every answer with schemathesis' checks: no 500, a documented
status, content type and headers, a body that fits the documented schema, invalid input
rejected, the key enforced (ignored_auth); a valid request refused only for what a
schema cannot say (SEMANTIC_400).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance

from python_tests.conftest import API_KEYS, AUTH, SAMPLE_DIR
from python_tests.test_interactions import served_api
from python_tests.test_serve_during_build import SAMPLE_FILES
from runner.api import create_app
from runner.cli import cli
from runner.config import Settings, load_settings
from runner.loading import load_file
from runner.warehouse import connect

EXAMPLES_PER_ROUTE = 40
# The 400s a request valid by the schema may get (schemathesis' positive_data_acceptance
# would count them as failures): an unknown channel, `since` after `until`.
SEMANTIC_400 = re.compile(r"^Unknown channel .*: the channels are |is after until")
ERROR_STATUSES = {"400", "401", "403", "503"}  # every data route; 404 on the one customer


# --- the description itself (no warehouse needed) ---------------------------------------


@pytest.fixture(scope="module")
def description() -> dict[str, Any]:
    return create_app(load_settings(target="duckdb"), API_KEYS).openapi()


def test_description_documents_the_key_the_errors_and_the_paging(description: dict[str, Any]):
    schemes = description["components"]["securitySchemes"]
    assert schemes == {
        "ApiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["ApiKey"]["description"],
        }
    }
    paths = description["paths"]
    assert set(paths) == {
        "/health",
        "/api/v1/interactions/{customer_id}",
        "/api/v1/interactions",
        "/api/v1/customers",
        "/api/v1/channels",
        "/api/v1/app/sessions",
        "/api/v1/app/purchases",
    }
    assert "security" not in paths["/health"]["get"]
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in paths.items():
        intake = path.startswith("/api/v1/app/")
        operation = item["post" if intake else "get"]
        responses = operation["responses"]
        assert "422" not in responses, path  # invalid parameters are answered with 400
        assert "500" in responses, path
        if path == "/health":
            continue
        assert operation["security"] == [{"ApiKey": []}], path
        expected = ERROR_STATUSES | ({"404"} if "{customer_id}" in path else set())
        if intake:  # the intake never reads the warehouse (no 503); its limits are a 413
            expected = {"400", "401", "403", "413"}
            assert "202" in responses, path
        assert expected <= set(responses), path
        for status in expected:
            assert responses[status]["content"]["application/json"]["schema"] == error_body
    for path in ("/api/v1/interactions", "/api/v1/customers"):
        parameters = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert {"type", "occupation", "after", "limit"} <= set(parameters)
        limit = parameters["limit"]["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100)
        page = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        listed = description["components"]["schemas"][page["$ref"].rsplit("/", 1)[-1]]
        assert set(listed["required"]) == {"data", "next"}
    channels = {p["name"] for p in paths["/api/v1/channels"]["get"]["parameters"]}
    assert {"channel", "topic", "since", "until", "per"} <= channels
    assert "HTTPValidationError" not in description["components"]["schemas"]


# --- a warehouse built from the sample ---------------------------------------------------


@pytest.fixture
def sample_api(settings: Settings, target: str) -> Iterator[str]:
    """The sample loaded and built (which publishes the DuckDB serving copy), served."""
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        for table, name in SAMPLE_FILES:
            load_file(warehouse, table, SAMPLE_DIR / name)
    built = CliRunner().invoke(cli, ["build", "--target", target, "--no-freshness"])
    assert built.exit_code == 0, built.output[-5000:]
    with served_api(settings) as base:
        yield base


def marts_query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with connect(settings, read_only=True) as warehouse:
        return warehouse.query(sql.format(marts=settings.schema("marts")))[1]


def pages(base: str, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = path
    while url is not None:
        response = requests.get(f"{base}{url}", headers=AUTH, timeout=30)
        assert response.status_code == 200, response.text
        items.extend(response.json()["data"])
        url = response.json()["next"]
    return items


def test_on_the_built_sample(settings: Settings, sample_api: str):
    """Paging through every customer lists each once with the marts' counts; the channel
    totals, per channel and per month, are those of a direct query of the marts; and
    schemathesis finds no answer that breaks the description, and no 500."""
    base = sample_api
    customers = pages(base, "/api/v1/customers?limit=37")
    expected = marts_query(
        settings,
        "select customer_id, customer_type, occupation from {marts}.dim_crm_customers "
        "order by customer_id",
    )
    assert len(expected) > 37  # several pages
    assert [(c["customer_id"], c["customer_type"], c["occupation"]) for c in customers] == expected

    listed = pages(base, "/api/v1/interactions?limit=37")
    ids = [item["customer_id"] for item in listed]
    assert ids == sorted(set(ids)) == [row[0] for row in expected]
    totals = dict(
        marts_query(
            settings,
            "select customer_id, total_interactions from {marts}.customer_channel_interactions",
        )
    )
    assert {item["customer_id"]: sum(item["interactions"].values()) for item in listed} == totals
    assert sum(totals.values()) > 0

    per_channel = marts_query(
        settings,
        "select channel, count(*) from {marts}.fct_crm_interactions "
        "where is_known_customer group by channel",
    )
    answer = requests.get(f"{base}/api/v1/channels", headers=AUTH, timeout=30).json()["data"]
    by_channel = {item["channel"]: item["interactions"] for item in answer}
    assert {k: v for k, v in by_channel.items() if v} == dict(per_channel)
    summed: Counter[str] = Counter()
    for item in listed:
        summed.update(item["interactions"])
    assert dict(summed) == by_channel  # the listing and the totals agree

    per_month = marts_query(
        settings,
        "select cast(date_trunc('month', interaction_date) as date), channel, count(*) "
        "from {marts}.fct_crm_interactions where is_known_customer group by 1, 2",
    )
    months = requests.get(f"{base}/api/v1/channels?per=month", headers=AUTH, timeout=30)
    counted = {(m["month"], m["channel"]): m["interactions"] for m in months.json()["data"]}
    assert {key: value for key, value in counted.items() if value} == {
        (first_day.strftime("%Y-%m"), channel): count for first_day, channel, count in per_month
    }
    assert len(counted) == len({month for month, _ in counted}) * len(by_channel)

    run_schemathesis(base)


def run_schemathesis(base: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        run_operation(base, operation, schemathesis.GenerationMode.POSITIVE)
        if operation.path != "/health":  # it has no parameter to make invalid
            run_operation(base, operation, schemathesis.GenerationMode.NEGATIVE)


def run_operation(
    base: str, operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode
) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        # requests leaves out a query parameter whose value is None or an empty list: such
        # a negative case would be sent without what makes it invalid (seen: an unknown
        # parameter set to None, sent as a valid request and answered 200).
        assume(all(value not in (None, []) for value in (case.query or {}).values()))
        # An integer beyond 64 bits reaches the intake as a float (orjson) and is refused
        # with a 400 naming the field: a known limit, not what this test is about.
        assume(not _beyond_64_bits(case.body))
        response = case.call_and_validate(
            base_url=base, headers=AUTH, excluded_checks=[positive_data_acceptance]
        )
        if response.status_code == 400 and mode is schemathesis.GenerationMode.POSITIVE:
            # What a schema cannot say: the channels are data, the days an order.
            message = response.json()["error"]["message"]
            assert SEMANTIC_400.search(message), message

    check()


def _beyond_64_bits(value: object) -> bool:
    if isinstance(value, dict):
        return any(map(_beyond_64_bits, value.values()))
    if isinstance(value, list):
        return any(map(_beyond_64_bits, value))
    return isinstance(value, int) and not -(2**63) <= value < 2**63
