"""CRM customers and their interactions per channel: the queries, the CLI and the HTTP
API (one customer, every customer paged, the customers paged, totals per channel).

The four marts are created here with plain SQL, standing in for the dbt models, on
both warehouses (an empty DuckDB file, a throwaway PostgreSQL database).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
import requests
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI

from python_tests.conftest import API_KEYS, AUTH
from runner.api import create_app
from runner.auth import ApiKeys
from runner.cli import cli
from runner.config import Settings
from runner.errors import RunnerError
from runner.interactions import InvalidFilter, UnknownCustomer, customer_interactions
from runner.serving import publish
from runner.warehouse import connect

# Inserted out of order on purpose: answers follow display_order.
CHANNELS = [("Visit", 4), ("Email", 1), ("Chat", 3), ("Call", 2)]
IN_DISPLAY_ORDER = ["Email", "Call", "Chat", "Visit"]
# id, type, occupation; 102 has no interaction at all
CUSTOMERS = [(101, "B2C", "Nurse"), (102, "B2B", "Cook"), (103, "B2C", "Cook")]
INTERACTIONS = [  # the last one's customer is not in the CRM export: not counted
    ("i1", 101, "Email", "Shoes", date(2017, 1, 1)),
    ("i2", 101, "Email", "Hats", date(2017, 1, 15)),
    ("i3", 101, "Call", "Shoes", date(2017, 1, 31)),
    ("i4", 101, "Chat", None, date(2017, 2, 1)),
    ("i5", 101, "Email", "Shoes", date(2017, 2, 10)),
    ("i6", 103, "Email", "Shoes", date(2017, 1, 1)),
    ("i7", 103, "Visit", "Shoes", date(2017, 1, 1)),
    ("i8", 105, "Email", "Shoes", date(2017, 1, 1)),
]
KNOWN = {customer_id for customer_id, _, _ in CUSTOMERS}


def counts(email: int = 0, call: int = 0, chat: int = 0, visit: int = 0) -> dict[str, int]:
    return {"Email": email, "Call": call, "Chat": chat, "Visit": visit}


def create_marts(settings: Settings) -> None:
    """The four marts the feature reads, with a few rows, in the target's marts schema."""

    def mart(name: str) -> str:
        return settings.relation("marts", name)

    with connect(settings) as warehouse:
        warehouse.execute(f"create schema {settings.schema('marts')}")
        warehouse.execute(
            f"create table {mart('dim_crm_channels')} (channel varchar, description varchar, "
            "display_order integer)"
        )
        warehouse.execute(
            f"create table {mart('dim_crm_customers')} (customer_id bigint, "
            "customer_type varchar, occupation varchar)"
        )
        warehouse.execute(
            f"create table {mart('customer_channel_interactions')} (customer_id bigint, "
            "email integer, call_interactions integer, chat integer, visit integer, "
            "total_interactions integer)"
        )
        warehouse.execute(
            f"create table {mart('fct_crm_interactions')} (interaction_id varchar, "
            "customer_id bigint, channel varchar, topic varchar, is_known_customer boolean, "
            "interaction_date date, interaction_at timestamp)"
        )
        for channel, order in CHANNELS:
            warehouse.execute(
                f"insert into {mart('dim_crm_channels')} values (?, ?, ?)",
                (channel, f"By {channel.lower()}", order),
            )
        for customer_id, kind, occupation in CUSTOMERS:
            warehouse.execute(
                f"insert into {mart('customer_channel_interactions')} values (?, 0, 0, 0, 0, 0)",
                (customer_id,),
            )
            warehouse.execute(
                f"insert into {mart('dim_crm_customers')} values (?, ?, ?)",
                (customer_id, kind, occupation),
            )
        for interaction_id, customer_id, channel, topic, day in INTERACTIONS:
            warehouse.execute(
                f"insert into {mart('fct_crm_interactions')} values (?, ?, ?, ?, ?, ?, ?)",
                (
                    interaction_id,
                    customer_id,
                    channel,
                    topic,
                    customer_id in KNOWN,
                    day,
                    f"{day} 10:30:00",
                ),
            )


@pytest.fixture
def marts(settings: Settings) -> Settings:
    create_marts(settings)
    publish(settings)  # DuckDB: the copy the API reads, as `runner build` publishes it
    return settings


def query(settings: Settings, customer_id: int, **filters) -> dict:
    with connect(settings, read_only=True) as warehouse:
        return customer_interactions(warehouse, settings, customer_id, **filters)


# --- the query -------------------------------------------------------------------------


def test_every_channel_in_display_order_with_zeros(marts: Settings):
    result = query(marts, 101)
    assert result == {"data": {"customer_id": 101, "interactions": counts(3, 1, 1, 0)}}
    assert list(result["data"]["interactions"]) == IN_DISPLAY_ORDER


def test_customer_without_interactions_gets_all_zeros(marts: Settings):
    assert query(marts, 102)["data"]["interactions"] == counts()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"topic": "Shoes"}, counts(2, 1, 0, 0)),
        ({"topic": "shoes"}, counts()),  # exact match
        ({"since": date(2017, 1, 31)}, counts(1, 1, 1, 0)),  # since is inclusive
        ({"until": date(2017, 1, 31)}, counts(2, 1, 0, 0)),  # until is inclusive
        ({"since": date(2017, 1, 15), "until": date(2017, 1, 15)}, counts(1, 0, 0, 0)),
        (
            {"topic": "Shoes", "since": date(2017, 1, 2), "until": date(2017, 2, 10)},
            counts(1, 1, 0, 0),
        ),
    ],
)
def test_filters(marts: Settings, filters: dict, expected: dict[str, int]):
    result = query(marts, 101, **filters)
    assert result["data"]["interactions"] == expected
    assert list(result["data"]["interactions"]) == IN_DISPLAY_ORDER


@pytest.mark.parametrize("customer_id", [999, -1, 2**70])
def test_unknown_customer(marts: Settings, customer_id: int):
    with pytest.raises(UnknownCustomer, match=f"No CRM customer with id {customer_id}"):
        query(marts, customer_id)


def test_since_after_until_is_refused(marts: Settings):
    with pytest.raises(InvalidFilter, match="is after until"):
        query(marts, 101, since=date(2017, 2, 1), until=date(2017, 1, 1))


def test_missing_marts_say_to_build_first(settings: Settings):
    with connect(settings) as warehouse:  # an existing but empty warehouse
        warehouse.execute("create schema marts")
        with pytest.raises(RunnerError, match=r"do not exist yet.*`runner build` first"):
            customer_interactions(warehouse, settings, 101)


# --- the CLI ---------------------------------------------------------------------------


def invoke(target: str, *args: str):
    return CliRunner().invoke(cli, ["interactions", *args, "--target", target])


def test_cli_prints_the_json(marts: Settings, target: str):
    result = invoke(target, "101", "--topic", "Shoes", "--since", "2017-01-02")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "data": {"customer_id": 101, "interactions": counts(1, 1, 0, 0)}
    }
    assert '\n  "data": {' in result.output  # indented by 2


def test_cli_unknown_customer_is_an_error(marts: Settings, target: str):
    result = invoke(target, "999")
    assert result.exit_code == 1
    assert "No CRM customer with id 999" in result.output


def test_cli_rejects_bad_arguments(marts: Settings, target: str):
    assert invoke(target, "abc").exit_code == 2
    assert invoke(target, "101", "--since", "2017-13-01").exit_code == 2
    result = invoke(target, "101", "--since", "2017-02-01", "--until", "2017-01-01")
    assert result.exit_code == 1 and "is after until" in result.output


# --- the HTTP API, over real HTTP ------------------------------------------------------


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    with served_api(settings) as base:
        yield base


@contextmanager
def served_api(settings: Settings, keys: ApiKeys | None = API_KEYS) -> Iterator[str]:
    """The API served by uvicorn in a background thread, accepting `keys` (the tests'
    key, AUTH); yields its base URL."""
    with served_app(create_app(settings, keys)) as base:
        yield base


@contextmanager
def served_app(app: FastAPI) -> Iterator[str]:
    """`app` served by uvicorn in a background thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            time.sleep(0.02)
        assert requests.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def get(url: str, headers: dict[str, str] | None = AUTH) -> requests.Response:
    """GET with the tests' API key (AUTH), checking the answer is JSON without a trace."""
    response = requests.get(url, headers=headers, timeout=10)
    assert "Traceback" not in response.text
    assert response.headers["content-type"] == "application/json"
    return response


def assert_error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]["message"]


def test_api_answers_the_counts(marts: Settings, api: str):
    response = get(f"{api}/api/v1/interactions/101")
    assert response.status_code == 200
    body = response.json()
    assert body == {"data": {"customer_id": 101, "interactions": counts(3, 1, 1, 0)}}
    assert '"customer_id":101' in response.text  # a JSON integer, not a string
    assert list(body["data"]["interactions"]) == IN_DISPLAY_ORDER

    filtered = get(f"{api}/api/v1/interactions/101?topic=Shoes&since=2017-01-31&until=2017-01-31")
    assert filtered.json()["data"]["interactions"] == counts(0, 1, 0, 0)
    assert get(f"{api}/api/v1/interactions/102").json()["data"]["interactions"] == counts()


def test_api_errors_are_json(marts: Settings, api: str):
    message = assert_error(get(f"{api}/api/v1/interactions/999"), 404, "not_found")
    assert "999" in message
    message = assert_error(get(f"{api}/api/v1/interactions/abc"), 400, "bad_request")
    assert "customer_id" in message
    for bad_id in ("1.0", "1_000"):
        assert_error(get(f"{api}/api/v1/interactions/{bad_id}"), 400, "bad_request")
    for bad_day in ("2017-13-01", "2017-1-1", "20170101", "2017-01-01T00:00:00"):
        response = get(f"{api}/api/v1/interactions/101?since={bad_day}")
        assert "since" in assert_error(response, 400, "bad_request")
    response = get(f"{api}/api/v1/interactions/101?since=2017-02-01&until=2017-01-01")
    assert "is after until" in assert_error(response, 400, "bad_request")
    assert_error(get(f"{api}/api/v1/nothing-here"), 404, "not_found")


def test_api_without_marts_answers_a_generic_503(settings: Settings, api: str):
    response = get(f"{api}/api/v1/interactions/101")
    message = assert_error(response, 503, "unavailable")
    assert "runner build" not in message and "marts" not in message  # details stay in the log


def test_api_internal_failure_is_a_generic_500(
    marts: Settings, api: str, monkeypatch: pytest.MonkeyPatch
):
    def broken(*args: object) -> dict:
        raise ValueError("secret detail")

    monkeypatch.setattr("runner.api.customer_interactions", broken)
    response = get(f"{api}/api/v1/interactions/101")
    assert "secret" not in assert_error(response, 500, "internal_error")


def test_api_holds_no_connection_between_requests(marts: Settings, api: str):
    """A build can write to the warehouse as soon as a request is answered (on DuckDB the
    API never opens the warehouse file), and the API serves what the build publishes."""
    assert get(f"{api}/api/v1/interactions/101").status_code == 200
    with connect(marts) as warehouse:  # read-write: fails if the API still held the file
        warehouse.execute(
            "insert into marts.customer_channel_interactions values (104, 0, 0, 0, 0, 0)"
        )
    publish(marts)
    assert get(f"{api}/api/v1/interactions/104").json()["data"]["interactions"] == counts()


# --- a non-production target -----------------------------------------------------------


def test_a_dev_target_reads_its_own_marts(dev_settings: Settings):
    """Target `dev` (not production) reads dev_marts, in the query, the CLI, the serving
    copy (DuckDB) and the API; the production marts are neither needed nor created."""
    create_marts(dev_settings)
    publish(dev_settings)  # DuckDB: the copy holds dev_marts; PostgreSQL: nothing to do
    expected = {"data": {"customer_id": 101, "interactions": counts(3, 1, 1, 0)}}
    assert query(dev_settings, 101) == expected
    result = CliRunner().invoke(cli, ["interactions", "101", "--target", "dev"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected
    with served_api(dev_settings) as base:
        assert get(f"{base}/api/v1/interactions/101").json() == expected
    with connect(dev_settings, read_only=True) as warehouse:
        assert not warehouse.table_exists("marts", "dim_crm_channels")


def test_a_dev_target_without_its_marts_names_them(settings: Settings, dev_settings: Settings):
    create_marts(settings)  # production's marts do not stand in for dev's
    result = CliRunner().invoke(cli, ["interactions", "101", "--target", "dev"])
    assert result.exit_code == 1
    assert "dev_marts.customer_channel_interactions, dev_marts.fct_crm_interactions" in (
        result.output
    )


# --- the channel filter, the listings and the channel totals (over HTTP) ------------------


def test_channel_filter_counts_only_that_channel(marts: Settings, api: str):
    assert query(marts, 101, channel="Email") == {
        "data": {"customer_id": 101, "interactions": {"Email": 3}}
    }
    body = get(f"{api}/api/v1/interactions/101?channel=Email&topic=Shoes&until=2017-01-31").json()
    assert body == {"data": {"customer_id": 101, "interactions": {"Email": 1}}}
    assert get(f"{api}/api/v1/interactions/102?channel=Visit").json()["data"]["interactions"] == {
        "Visit": 0
    }
    message = assert_error(get(f"{api}/api/v1/interactions/101?channel=email"), 400, "bad_request")
    assert "Unknown channel 'email'" in message and "Email, Call, Chat, Visit" in message


def test_cli_channel_option(marts: Settings, target: str):
    result = invoke(target, "101", "--channel", "Call")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["data"]["interactions"] == {"Call": 1}


def follow(api: str, path: str) -> list[dict]:
    """Every page of a listing, following `next` until null; the pages' items."""
    items: list[dict] = []
    url: str | None = path
    for _ in range(100):
        assert url is not None
        response = get(f"{api}{url}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "next"}
        items.extend(body["data"])
        url = body["next"]
        if url is None:
            return items
    pytest.fail("the listing did not end")


def test_customers_listing_with_type_and_occupation(marts: Settings, api: str):
    everyone = [
        {"customer_id": 101, "customer_type": "B2C", "occupation": "Nurse"},
        {"customer_id": 102, "customer_type": "B2B", "occupation": "Cook"},
        {"customer_id": 103, "customer_type": "B2C", "occupation": "Cook"},
    ]
    assert get(f"{api}/api/v1/customers").json() == {"data": everyone, "next": None}
    first = get(f"{api}/api/v1/customers?limit=2&type=B2C").json()
    assert first == {"data": [everyone[0], everyone[2]], "next": None}
    page = get(f"{api}/api/v1/customers?limit=1&occupation=Cook").json()
    assert page == {
        "data": [everyone[1]],
        "next": "/api/v1/customers?limit=1&occupation=Cook&after=102",
    }
    assert follow(api, "/api/v1/customers?limit=1&occupation=Cook") == everyone[1:]
    assert follow(api, "/api/v1/customers?type=B2C&occupation=Cook") == [everyone[2]]
    assert follow(api, "/api/v1/customers?type=b2c") == []  # exact match
    assert follow(api, "/api/v1/customers?after=101") == everyone[1:]
    for after in (-(2**70), 2**70):  # beyond the ids a BIGINT holds: all, none
        expected = everyone if after < 0 else []
        assert follow(api, f"/api/v1/customers?after={after}") == expected


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_paging_through_every_customer_gives_each_once(marts: Settings, api: str, limit: int):
    items = follow(api, f"/api/v1/interactions?limit={limit}")
    assert [item["customer_id"] for item in items] == [101, 102, 103]
    assert items == [get(f"{api}/api/v1/interactions/{c}").json()["data"] for c in (101, 102, 103)]
    assert list(items[0]["interactions"]) == IN_DISPLAY_ORDER
    total = sum(sum(item["interactions"].values()) for item in items)
    assert total == sum(1 for row in INTERACTIONS if row[1] in KNOWN)  # unknown 105 not listed


def test_every_customers_interactions_with_filters(marts: Settings, api: str):
    def listed(query_string: str) -> dict[int, dict[str, int]]:
        items = follow(api, f"/api/v1/interactions?limit=2&{query_string}")
        return {item["customer_id"]: item["interactions"] for item in items}

    assert listed("channel=Email") == {101: {"Email": 3}, 102: {"Email": 0}, 103: {"Email": 1}}
    assert listed("topic=Shoes&since=2017-01-02") == {
        101: counts(1, 1, 0, 0), 102: counts(), 103: counts()
    }  # fmt: skip
    assert listed("type=B2C&occupation=Cook") == {103: counts(1, 0, 0, 1)}
    assert listed("type=B2C&channel=Visit&until=2017-01-01") == {
        101: {"Visit": 0},
        103: {"Visit": 1},
    }


def test_channel_totals_and_per_month(marts: Settings, api: str):
    body = get(f"{api}/api/v1/channels").json()
    assert body == {
        "data": [
            {"channel": "Email", "description": "By email", "display_order": 1, "interactions": 4},
            {"channel": "Call", "description": "By call", "display_order": 2, "interactions": 1},
            {"channel": "Chat", "description": "By chat", "display_order": 3, "interactions": 1},
            {"channel": "Visit", "description": "By visit", "display_order": 4, "interactions": 1},
        ]
    }  # the unknown customer 105's Email is not counted
    months = get(f"{api}/api/v1/channels?per=month").json()["data"]
    assert [(m["month"], m["channel"], m["interactions"]) for m in months] == [
        ("2017-01", "Email", 3), ("2017-01", "Call", 1), ("2017-01", "Chat", 0),
        ("2017-01", "Visit", 1),
        ("2017-02", "Email", 1), ("2017-02", "Call", 0), ("2017-02", "Chat", 1),
        ("2017-02", "Visit", 0),
    ]  # fmt: skip
    shoes = get(f"{api}/api/v1/channels?per=month&topic=Shoes&channel=Email").json()["data"]
    assert shoes == [
        {"month": "2017-01", "channel": "Email", "interactions": 2},
        {"month": "2017-02", "channel": "Email", "interactions": 1},
    ]
    late = get(f"{api}/api/v1/channels?since=2017-02-01").json()["data"]
    assert [item["interactions"] for item in late] == [1, 0, 1, 0]


def test_listing_parameters_are_checked(marts: Settings, api: str):
    for path in ("/api/v1/customers", "/api/v1/interactions"):
        for bad in ("limit=0", "limit=1001", "limit=abc", "limit=1.5"):
            assert "limit" in assert_error(get(f"{api}{path}?{bad}"), 400, "bad_request")
        for bad in ("after=abc", "after=1.0"):
            assert "after" in assert_error(get(f"{api}{path}?{bad}"), 400, "bad_request")
    response = get(f"{api}/api/v1/interactions?since=2017-02-01&until=2017-01-01")
    assert "is after until" in assert_error(response, 400, "bad_request")
    assert "per" in assert_error(get(f"{api}/api/v1/channels?per=week"), 400, "bad_request")
    assert "since" in assert_error(get(f"{api}/api/v1/channels?since=2017-1-1"), 400, "bad_request")
    assert_error(get(f"{api}/api/v1/channels?channel=Fax"), 400, "bad_request")
    # A parameter the route does not have (a typo) is refused, not ignored.
    message = assert_error(get(f"{api}/api/v1/interactions?chanel=Email"), 400, "bad_request")
    assert message.startswith("Unknown parameter 'chanel': this route's parameters are after,")
    message = assert_error(get(f"{api}/api/v1/interactions/101?limit=1"), 400, "bad_request")
    assert message == (
        "Unknown parameter 'limit': this route's parameters are channel, since, topic, until."
    )
    assert_error(get(f"{api}/api/v1/channels?=true"), 400, "bad_request")


def test_new_routes_without_marts_answer_503(settings: Settings, api: str):
    for path in ("/api/v1/customers", "/api/v1/interactions", "/api/v1/channels"):
        assert_error(get(f"{api}{path}"), 503, "unavailable")


@pytest.mark.parametrize("text", ["%F0%9F%98%80", "%27%3B--", "%5C", "%25", "+"])
def test_any_text_filter_is_an_answer_not_an_error(marts: Settings, api: str, text: str):
    """Filters are parameters, never SQL: any text is an answer (matching nothing here)."""
    for path in (
        f"/api/v1/interactions?occupation={text}&topic={text}",
        f"/api/v1/channels?topic={text}",
    ):
        response = get(f"{api}{path}")
        assert response.status_code == 200, (path, response.text)
    assert get(f"{api}/api/v1/interactions/101?topic={text}").json()["data"]["interactions"] == (
        counts()
    )
    assert get(f"{api}/api/v1/customers?type={text}").json() == {"data": [], "next": None}
    response = get(f"{api}/api/v1/interactions/101?channel={text}")
    assert "Unknown channel" in assert_error(response, 400, "bad_request")


def test_a_nul_character_in_a_filter_is_refused(marts: Settings, api: str):
    """No mart value holds one, and PostgreSQL refuses it in a query: a 400, not a 500."""
    for name, path in (
        ("topic", "/api/v1/interactions/101"),
        ("channel", "/api/v1/interactions"),
        ("occupation", "/api/v1/customers"),
        ("type", "/api/v1/interactions"),
        ("topic", "/api/v1/channels"),
    ):
        response = get(f"{api}{path}?{name}=a%00b")
        message = assert_error(response, 400, "bad_request")
        assert message == f"Invalid parameter: {name}: must not contain a NUL character"
