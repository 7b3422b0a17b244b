"""An HTTP API over the marts (FastAPI), read-only but for the app events' intake
(runner.intake: POST /api/v1/app/sessions and /purchases, which only write to their own
spool). Run it with `runner serve`.

A build can run while it answers. On PostgreSQL each request opens its own short
connection. On DuckDB (one writer at a time, and a reader's lock keeps a build out) it
never opens the warehouse file: it reads the copy of its marts that each successful
build publishes (runner.serving), so during a build it answers from the previous one.
Errors are JSON, `{"error": {"code": ..., "message": ...}}`, and never show a stack
trace: internal failures are logged by the server and answered with a generic message.

The interactive docs (`/docs`, Swagger UI; `/redoc`) load their scripts and styles from
the server itself (the fastapi-offline package ships them), never from a CDN, so they
work without internet access.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException

from runner.config import Settings
from runner.errors import RunnerError
from runner.intake import intake_router
from runner.interactions import InvalidFilter, UnknownCustomer, customer_interactions
from runner.serving import reader

logger = logging.getLogger(__name__)

ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


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


def error(status: int, code: str, message: str) -> JSONResponse:
    """The JSON body of every error answer."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: Settings) -> FastAPI:
    """The API for the warehouse of `settings` (read-only)."""
    open_marts = reader(settings)
    app = FastAPIOffline(
        title="customer_analytics API",
        summary="Read-only queries of the customer_analytics marts.",
    )

    @app.get("/health")
    def health() -> dict[str, str]:
        """The server is up (does not touch the warehouse)."""
        return {"status": "ok"}

    @app.get("/api/v1/interactions/{customer_id}")
    def interactions(
        customer_id: Annotated[CustomerId, Path(description="The CRM customer id.")],
        topic: Annotated[str | None, Query(description="Only this topic (exact).")] = None,
        since: Annotated[Day | None, Query(description="From this day (YYYY-MM-DD).")] = None,
        until: Annotated[Day | None, Query(description="To this day, inclusive.")] = None,
    ) -> dict[str, Any]:
        """A CRM customer's interactions per channel: every channel, zero when none."""
        with open_marts() as warehouse:
            return customer_interactions(warehouse, settings, customer_id, topic, since, until)

    app.include_router(intake_router(settings))  # POST /api/v1/app/... (runner.intake)

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
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so the server logs it
        # with its traceback; the client only learns that something went wrong.
        return error(500, "internal_error", "Internal server error.")

    return app
