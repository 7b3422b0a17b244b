"""An HTTP API over the marts (FastAPI), read-only but for the app events' intake
(runner.intake: POST /api/v1/app/sessions and /purchases, which only write to their own
spool). Run it with `runner serve`.

Routes (all GET): `/api/v1/interactions/{customer_id}` (one CRM customer's interactions
per channel), `/api/v1/interactions` (every customer's, paged), `/api/v1/customers`
(the customers with their type and occupation, paged), `/api/v1/channels` (totals per
channel, or per channel and month), and `/health`.

Every route but `/health` needs an API key, `Authorization: Bearer <key>` (runner.auth):
the check is a dependency of the whole app, so routes other modules add (an
`include_router` in create_app) need a key too. The docs pages (`/docs`, `/redoc`) and
`/openapi.json` are public: they describe the API and hold no data. Another app-wide
dependency refuses query parameters a route does not declare (400), so a typo such as
`chanel=Email` is not answered as if unfiltered.

A build can run while it answers. On PostgreSQL each request opens its own short
connection. On DuckDB (one writer at a time, and a reader's lock keeps a build out) it
never opens the warehouse file: it reads the copy of its marts that each successful
build publishes (runner.serving), so during a build it answers from the previous one.
Errors are JSON, `{"error": {"code": ..., "message": ...}}`, and never show a stack
trace: internal failures are logged by the server and answered with a generic message.

The listings are paged by customer id with a keyset cursor: `limit` (1 to 1000, 100 by
default) customers after the id `after`; `next` is the path and query of the next page
(null on the last), so a client follows it until null and sees each customer once.

The interactive docs (`/docs`, Swagger UI; `/redoc`) load their scripts and styles from
the server itself (the fastapi-offline package ships them), never from a CDN, so they
work without internet access.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from starlette.exceptions import HTTPException

from runner.auth import ApiKeys, key_check
from runner.config import Settings
from runner.errors import RunnerError
from runner.intake import intake_router
from runner.interactions import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CustomerFilters,
    Filters,
    InvalidFilter,
    Page,
    UnknownCustomer,
    channel_totals,
    customer_interactions,
    list_customers,
    list_interactions,
)
from runner.serving import reader

logger = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


def _integer(value: Any) -> Any:
    """Only plain decimal digits are an id (not `1.0`, `1_000` or ` 1`)."""
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        raise ValueError("expected an integer")
    return value


def _day(value: Any) -> Any:
    """Only YYYY-MM-DD is a day (not a timestamp or `20170101`)."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError("expected a date as YYYY-MM-DD")
        return date.fromisoformat(value)  # ValueError for e.g. 2017-13-01
    return value


CustomerId = Annotated[int, BeforeValidator(_integer)]
Day = Annotated[date, BeforeValidator(_day)]

# --- what the routes answer (the OpenAPI description's schemas) -------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="bad_request, unauthorized, forbidden, not_found, ...")
    message: str = Field(description="What went wrong and what to do, in words.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class CustomerCounts(BaseModel):
    customer_id: int
    interactions: dict[str, int] = Field(
        description="Interactions per channel, in the channels' display order: every known "
        "channel (zero when none), or only the `channel` asked for."
    )


class CustomerAnswer(BaseModel):
    data: CustomerCounts


class InteractionsPage(BaseModel):
    data: list[CustomerCounts] = Field(description="The page's customers, by ascending id.")
    next: str | None = Field(description="Path and query of the next page; null on the last page.")


class Customer(BaseModel):
    customer_id: int
    customer_type: str | None = Field(description="The CRM's customer type.")
    occupation: str | None


class CustomersPage(BaseModel):
    data: list[Customer] = Field(description="The page's customers, by ascending id.")
    next: str | None = Field(description="Path and query of the next page; null on the last page.")


class ChannelTotal(BaseModel):
    channel: str
    description: str | None
    display_order: int
    interactions: int


class ChannelMonthTotal(BaseModel):
    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", description="YYYY-MM")
    channel: str
    interactions: int


class ChannelsAnswer(BaseModel):
    data: list[ChannelTotal] | list[ChannelMonthTotal] = Field(
        description="Without `per`: one item per channel, in display order. With "
        "`per=month`: one item per month (ascending) and channel, every channel for each "
        "month with an interaction."
    )


class Health(BaseModel):
    status: Literal["ok"]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "A parameter is invalid (the message names it).",
        401: "No API key: send `Authorization: Bearer <key>`.",
        403: "The API key is not accepted.",
        404: "No such customer.",
        413: "The batch or the body is too large (the message gives the limit).",
        500: "An internal error (logged by the server).",
        503: "The warehouse is not available (marts not built yet, database down).",
    }
    return {status: {"model": ErrorBody, "description": described[status]} for status in statuses}


# --- the query parameters shared by the routes ------------------------------------------


def _text(value: str) -> str:
    """A text filter: any text but NUL characters, which no mart value holds (and
    PostgreSQL refuses in a query)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _text_query(description: str, alias: str | None = None) -> Any:
    return Query(
        alias=alias, description=description, json_schema_extra={"pattern": "^[^\\u0000]*$"}
    )


Text = Annotated[str, AfterValidator(_text)]
ChannelParam = Annotated[Text | None, _text_query("Only this channel (exact, e.g. `Email`).")]
TopicParam = Annotated[Text | None, _text_query("Only this topic (exact).")]
SinceParam = Annotated[Day | None, Query(description="From this day (YYYY-MM-DD).")]
UntilParam = Annotated[Day | None, Query(description="To this day, inclusive.")]
TypeParam = Annotated[Text | None, _text_query("Only customers of this type (exact).", "type")]
OccupationParam = Annotated[
    Text | None, _text_query("Only customers with this occupation (exact).")
]
AfterParam = Annotated[
    CustomerId | None,
    Query(description="Paging cursor: customers with an id after this one (from `next`)."),
]


def _limit(value: int) -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"expected from 1 to {MAX_LIMIT}")
    return value


# (The range is checked by _limit and documented by hand: FastAPI misdescribes ge/le
# next to a BeforeValidator.)
LimitParam = Annotated[
    int,
    BeforeValidator(_integer),
    AfterValidator(_limit),
    Query(
        description=f"Customers per page (at most {MAX_LIMIT}).",
        json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
    ),
]


def error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON body of every error answer."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def next_link(request: Request, page: Page) -> str | None:
    """The path and query of the page after `page`: the same query, `after` its last id."""
    if page.next_after is None:
        return None
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "after"]
    query.append(("after", str(page.next_after)))
    return f"{request.url.path}?{urlencode(query)}"


async def known_parameters_only(request: Request) -> None:
    """A dependency: 400 for a query parameter the route does not declare. (async: it
    never waits, so it runs on the event loop instead of a hop to the thread pool.)"""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        declared.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    unknown = sorted({name for name in request.query_params if name not in declared})
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        known = ", ".join(sorted(declared)) or "none"
        raise HTTPException(400, f"Unknown parameter {names}: this route's parameters are {known}.")


def create_app(settings: Settings, keys: ApiKeys | None) -> FastAPI:
    """The API for the warehouse of `settings` (read-only), accepting only `keys` on every
    route but /health; `keys=None` serves without authentication (`runner serve
    --no-auth`)."""
    open_marts = reader(settings)
    app = FastAPIOffline(
        title="customer_analytics API",
        summary="Read-only queries of the customer_analytics marts.",
        description=(
            "Every route but `/health` needs `Authorization: Bearer <key>`."
            if keys is not None
            else "Served with `--no-auth`: no route needs a key."
        ),
    )

    @app.get("/health", responses=_errors(500))
    def health() -> Health:
        """The server is up (does not touch the warehouse; needs no key)."""
        return Health(status="ok")

    # Every route added from here on needs a key, and refuses query parameters it does
    # not know (a typo such as `chanel=` would else answer as if unfiltered): those of
    # included routers too.
    if keys is not None:
        app.router.dependencies.append(Depends(key_check(keys)))
    app.router.dependencies.append(Depends(known_parameters_only))
    protected = (401, 403) if keys is not None else ()

    @app.get(
        "/api/v1/interactions/{customer_id}",
        responses=_errors(400, *protected, 404, 500, 503),
    )
    def interactions(
        customer_id: Annotated[CustomerId, Path(description="The CRM customer id.")],
        channel: ChannelParam = None,
        topic: TopicParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
    ) -> CustomerAnswer:
        """A CRM customer's interactions per channel: every channel, zero when none."""
        with open_marts() as warehouse:
            answer = customer_interactions(
                warehouse, settings, customer_id, topic, since, until, channel=channel
            )
        return CustomerAnswer.model_validate(answer)

    @app.get("/api/v1/interactions", responses=_errors(400, *protected, 500, 503))
    def all_interactions(
        request: Request,
        channel: ChannelParam = None,
        topic: TopicParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
        customer_type: TypeParam = None,
        occupation: OccupationParam = None,
        after: AfterParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> InteractionsPage:
        """Every CRM customer's interactions per channel (as for one customer), paged by
        ascending customer id; `type` and `occupation` pick the customers."""
        filters = Filters(channel=channel, topic=topic, since=since, until=until)
        who = CustomerFilters(customer_type=customer_type, occupation=occupation)
        with open_marts() as warehouse:
            page = list_interactions(warehouse, settings, filters, who, after, limit)
        return InteractionsPage.model_validate(
            {"data": page.items, "next": next_link(request, page)}
        )

    @app.get("/api/v1/customers", responses=_errors(400, *protected, 500, 503))
    def customers(
        request: Request,
        customer_type: TypeParam = None,
        occupation: OccupationParam = None,
        after: AfterParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> CustomersPage:
        """The CRM customers with their type and occupation, paged by ascending id."""
        who = CustomerFilters(customer_type=customer_type, occupation=occupation)
        with open_marts() as warehouse:
            page = list_customers(warehouse, settings, who, after, limit)
        return CustomersPage.model_validate({"data": page.items, "next": next_link(request, page)})

    @app.get("/api/v1/channels", responses=_errors(400, *protected, 500, 503))
    def channels(
        channel: ChannelParam = None,
        topic: TopicParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
        per: Annotated[
            Literal["month"] | None,
            Query(description="`month`: totals per month and channel."),
        ] = None,
    ) -> ChannelsAnswer:
        """The CRM customers' interactions per channel (every channel, zero when none),
        or per month and channel with `per=month`."""
        filters = Filters(channel=channel, topic=topic, since=since, until=until)
        with open_marts() as warehouse:
            totals = channel_totals(warehouse, settings, filters, per_month=per == "month")
        return ChannelsAnswer.model_validate({"data": totals})

    # Other modules' routers are included here (they need a key like the routes above).

    # POST /api/v1/app/... (runner.intake)
    app.include_router(intake_router(settings, _errors(400, *protected, 413, 500)))

    @app.exception_handler(RequestValidationError)
    def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{problem['loc'][-1]}: {problem['msg'].removeprefix('Value error, ')}"
            for problem in exc.errors()
        ]
        return error(400, "bad_request", "Invalid parameter: " + "; ".join(problems))

    @app.exception_handler(InvalidFilter)
    def invalid_filter(request: Request, exc: InvalidFilter) -> JSONResponse:
        return error(400, "bad_request", exc.message)

    @app.exception_handler(UnknownCustomer)
    def unknown_customer(request: Request, exc: UnknownCustomer) -> JSONResponse:
        return error(404, "not_found", exc.message)

    @app.exception_handler(RunnerError)
    def unavailable(request: Request, exc: RunnerError) -> JSONResponse:
        # Expected but not the client's doing: marts not built (no copy published),
        # database down. The message may name paths and hosts: log it only.
        logger.error("%s %s: %s", request.method, request.url.path, exc.message)
        return error(503, "unavailable", "The warehouse is not available; try again later.")

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = ERROR_CODES.get(exc.status_code, "error")
        return error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so the server logs it
        # with its traceback; the client only learns that something went wrong.
        return error(500, "internal_error", "Internal server error.")

    app.openapi = _openapi_without_422(app)  # type: ignore[method-assign]
    return app


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without its `null` alternative: a parameter is
    either absent or text on the wire, never null."""
    alternatives = schema.get("anyOf")
    if not isinstance(alternatives, list) or {"type": "null"} not in alternatives:
        return schema
    others = [option for option in alternatives if option != {"type": "null"}]
    if len(others) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**others[0], **rest}


def _openapi_without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 for invalid parameters; this API answers them with 400
    (bad_parameter), so the description drops the 422 and its schemas. Optional
    parameters are described without FastAPI's `null` alternative."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
                    for parameter in operation.get("parameters", []):
                        parameter["schema"] = _not_null(parameter["schema"])
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
