"""The CRM customers and their interactions per channel, as the API and the CLI answer.

Reads four marts in the marts schema of the settings' target (Settings.schema("marts")):
`customer_channel_interactions` (one row per CRM customer: tells whether a customer
exists), `dim_crm_customers` (the customers' type and occupation), `fct_crm_interactions`
(one row per valid interaction) and `dim_crm_channels` (every known channel, in display
order). Shared by the `runner interactions` command and the HTTP API (runner.api).

Interactions are counted per channel, every known channel included (zero when none) in
display order, or only the channel of a `channel` filter. The listings (customers,
every customer's interactions) are paged by customer id, in ascending order, with a
keyset cursor: a page holds the customers after the id `after`, and the next page
starts after its last one, so a page never repeats or skips a customer, even when a
build changes the marts between two pages. Totals per channel count the interactions
of the CRM customers (those the listings list: `is_known_customer`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Concatenate, ParamSpec, TypeVar

from runner.config import Settings
from runner.errors import RunnerError
from runner.warehouse import Warehouse

MARTS = (
    "customer_channel_interactions",
    "fct_crm_interactions",
    "dim_crm_channels",
    "dim_crm_customers",
)
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


class UnknownCustomer(RunnerError):
    """The customer id is not a CRM customer of the warehouse."""


class InvalidFilter(RunnerError):
    """The filters contradict each other (e.g. `since` after `until`) or name a channel
    that does not exist."""


@dataclass(frozen=True)
class Filters:
    """Which interactions count: on this channel, about this topic (both exact), on or
    after `since` and on or before `until` (both inclusive)."""

    channel: str | None = None
    topic: str | None = None
    since: date | None = None
    until: date | None = None

    def check(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidFilter(
                f"since ({self.since}) is after until ({self.until}): nothing can match."
            )

    def conditions(self, alias: str) -> tuple[list[str], list[Any]]:
        """SQL conditions on the interactions table `alias`, and their parameters."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, operator, value in (
            ("channel", "=", self.channel),
            ("topic", "=", self.topic),
            ("interaction_date", ">=", self.since),
            ("interaction_date", "<=", self.until),
        ):
            if value is not None:
                conditions.append(f"{alias}.{column} {operator} ?")
                params.append(value)
        return conditions, params


@dataclass(frozen=True)
class CustomerFilters:
    """Which customers: of this type, with this occupation (both exact)."""

    customer_type: str | None = None
    occupation: str | None = None

    def conditions(self, alias: str) -> tuple[list[str], list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("customer_type", self.customer_type),
            ("occupation", self.occupation),
        ):
            if value is not None:
                conditions.append(f"{alias}.{column} = ?")
                params.append(value)
        return conditions, params


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items, and the cursor of the next page (None: this was
    the last)."""

    items: list[dict[str, Any]]
    next_after: int | None


def require_marts(warehouse: Warehouse, settings: Settings) -> None:
    """Fail with what to do when any of the marts this module reads is missing."""
    schema = settings.schema("marts")  # table_exists: Spark has no information_schema
    missing = [table for table in MARTS if not warehouse.table_exists(schema, table)]
    if missing:
        names = ", ".join(settings.relation("marts", table) for table in missing)
        raise RunnerError(
            f"{names} {'does' if len(missing) == 1 else 'do'} not exist yet in this warehouse. "
            "Load data and run `runner build` first."
        )


P = ParamSpec("P")
R = TypeVar("R")


def reads_marts(
    function: Callable[Concatenate[Warehouse, Settings, P], R],
) -> Callable[Concatenate[Warehouse, Settings, P], R]:
    """A reader of the marts that checks them only when a query fails (a request then
    pays no catalog lookups): when one of the marts is missing, the failure becomes
    require_marts' error, which says what to do."""

    @functools.wraps(function)
    def reader(warehouse: Warehouse, settings: Settings, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(warehouse, settings, *args, **kwargs)
        except RunnerError:
            raise
        except Exception:
            require_marts(warehouse, settings)
            raise

    return reader


@reads_marts
def customer_interactions(
    warehouse: Warehouse,
    settings: Settings,
    customer_id: int,
    topic: str | None = None,
    since: date | None = None,
    until: date | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """The customer's interactions counted per channel, every known channel included
    (zero when none), in the channels' display order:

        {"data": {"customer_id": 42, "interactions": {"Email": 2, "Call": 0, ...}}}

    `channel` counts only that channel (the answer then holds only it); `topic` keeps
    only interactions about exactly that topic; `since` and `until` keep only
    interactions on or after / on or before those days (both inclusive).

    Raises UnknownCustomer when the customer is not in the warehouse, InvalidFilter when
    `since` is after `until` or the channel is unknown, and RunnerError when the marts
    are not built yet.
    """
    filters = Filters(channel=channel, topic=topic, since=since, until=until)
    filters.check()
    _check_channel(warehouse, settings, channel)
    if not _customer_exists(warehouse, settings, customer_id):
        raise UnknownCustomer(f"No CRM customer with id {customer_id}.")
    one = "(select cast(? as bigint) as customer_id) as page"
    counts = _counts(warehouse, settings, one, [customer_id], filters)
    return {"data": {"customer_id": customer_id, "interactions": counts.get(customer_id, {})}}


@reads_marts
def list_customers(
    warehouse: Warehouse,
    settings: Settings,
    who: CustomerFilters,
    after: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """The CRM customers with their type and occupation, by ascending id, `limit` at most
    after the id `after`:

        {"customer_id": 1, "customer_type": "Red", "occupation": "Jedi"}
    """
    page_sql, params = _page_of_customers(settings, who, after, limit)
    _, rows = warehouse.query(
        f"select page.customer_id, page.customer_type, page.occupation from {page_sql} "
        "order by page.customer_id",
        params,
    )
    items = [
        {"customer_id": int(customer_id), "customer_type": kind, "occupation": occupation}
        for customer_id, kind, occupation in rows
    ]
    return _page(items, limit)


@reads_marts
def list_interactions(
    warehouse: Warehouse,
    settings: Settings,
    filters: Filters,
    who: CustomerFilters,
    after: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """Every CRM customer's interactions per channel (as customer_interactions answers
    one customer's), by ascending customer id, `limit` customers at most after the id
    `after`; `who` picks the customers, `filters` the interactions counted. Customers
    without a matching interaction are listed with zeros."""
    filters.check()
    _check_channel(warehouse, settings, filters.channel)
    page_sql, params = _page_of_customers(settings, who, after, limit)
    counts = _counts(warehouse, settings, page_sql, params, filters)
    items = [
        {"customer_id": customer_id, "interactions": interactions}
        for customer_id, interactions in counts.items()
    ]
    return _page(items, limit)


@reads_marts
def channel_totals(
    warehouse: Warehouse, settings: Settings, filters: Filters, per_month: bool = False
) -> list[dict[str, Any]]:
    """The CRM customers' interactions counted per channel, every known channel in
    display order (zero when none):

        {"channel": "Email", "description": "...", "display_order": 1, "interactions": 9}

    With `per_month`, per month and channel, every channel for each month with an
    interaction (months ascending, as YYYY-MM):

        {"month": "2017-01", "channel": "Email", "interactions": 4}
    """
    filters.check()
    _check_channel(warehouse, settings, filters.channel)
    channels = settings.relation("marts", "dim_crm_channels")
    facts = settings.relation("marts", "fct_crm_interactions")
    conditions, params = filters.conditions("i")
    matching = " and ".join(["i.is_known_customer", *conditions])
    chosen, chosen_params = Filters(channel=filters.channel).conditions("c")
    where = f"where {chosen[0]} " if chosen else ""
    if not per_month:
        _, rows = warehouse.query(
            "select c.channel, c.description, c.display_order, count(i.interaction_id) "
            f"from {channels} as c "
            f"left join {facts} as i on i.channel = c.channel and {matching} "
            f"{where}"
            "group by c.channel, c.description, c.display_order "
            "order by c.display_order, c.channel",
            [*params, *chosen_params],
        )
        return [
            {
                "channel": channel,
                "description": description,
                "display_order": int(order),
                "interactions": int(count),
            }
            for channel, description, order, count in rows
        ]
    month = "cast(date_trunc('month', i.interaction_date) as date)"
    _, rows = warehouse.query(
        f"with months as (select distinct {month} as month from {facts} as i "
        f"where {matching}) "
        "select months.month, c.channel, count(i.interaction_id) "
        f"from months cross join {channels} as c "
        f"left join {facts} as i on i.channel = c.channel and {month} = months.month "
        f"and {matching} "
        f"{where}"
        "group by months.month, c.channel, c.display_order "
        "order by months.month, c.display_order, c.channel",
        [*params, *params, *chosen_params],
    )
    return [
        {"month": first_day.strftime("%Y-%m"), "channel": channel, "interactions": int(count)}
        for first_day, channel, count in rows
    ]


def _page_of_customers(
    settings: Settings, who: CustomerFilters, after: int | None, limit: int
) -> tuple[str, list[Any]]:
    """A subquery `page` of one page of customers (id, type, occupation), and one more,
    which tells whether there is a next page; and its parameters."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT}")
    conditions, params = who.conditions("customers")
    if after is not None:
        if after >= BIGINT_MAX:
            conditions.append("1 = 0")  # no id comes after the largest one
        elif after >= BIGINT_MIN:  # below it every id comes after
            conditions.append("counted.customer_id > ?")
            params.append(after)
    where = f"where {' and '.join(conditions)} " if conditions else ""
    sql = (
        "(select counted.customer_id, customers.customer_type, customers.occupation "
        f"from {settings.relation('marts', 'customer_channel_interactions')} as counted "
        f"inner join {settings.relation('marts', 'dim_crm_customers')} as customers "
        "on customers.customer_id = counted.customer_id "
        f"{where}"
        f"order by counted.customer_id limit {int(limit) + 1}) as page"
    )
    return sql, params


def _page(items: list[dict[str, Any]], limit: int) -> Page:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, int(items[-1]["customer_id"]))
    return Page(items, None)


def _counts(
    warehouse: Warehouse,
    settings: Settings,
    page_sql: str,
    page_params: list[Any],
    filters: Filters,
) -> dict[int, dict[str, int]]:
    """Per customer of the subquery `page_sql` (a relation `page` with a customer_id),
    the interactions matching `filters` per channel (every channel, or the filter's
    one), in display order; customers by ascending id. One statement: one view of the
    marts (on PostgreSQL a build between two statements could change them)."""
    conditions, params = filters.conditions("i")
    chosen, chosen_params = Filters(channel=filters.channel).conditions("c")
    where = f"where {chosen[0]} " if chosen else ""
    # The filters sit in the join condition, so channels without a match still get a row.
    _, rows = warehouse.query(
        "select page.customer_id, c.channel, count(i.customer_id) as interactions "
        f"from {page_sql} "
        f"cross join {settings.relation('marts', 'dim_crm_channels')} as c "
        f"left join {settings.relation('marts', 'fct_crm_interactions')} as i "
        "on i.customer_id = page.customer_id and i.channel = c.channel"
        f"{''.join(' and ' + condition for condition in conditions)} "
        f"{where}"
        "group by page.customer_id, c.channel, c.display_order "
        "order by page.customer_id, c.display_order, c.channel",
        [*page_params, *params, *chosen_params],
    )
    counts: dict[int, dict[str, int]] = {}
    for customer_id, channel, count in rows:
        counts.setdefault(int(customer_id), {})[channel] = int(count)
    return counts


def _check_channel(warehouse: Warehouse, settings: Settings, channel: str | None) -> None:
    if channel is None:
        return
    _, rows = warehouse.query(
        f"select channel from {settings.relation('marts', 'dim_crm_channels')} "
        "order by display_order, channel"
    )
    known = [row[0] for row in rows]
    if channel not in known:
        raise InvalidFilter(
            f"Unknown channel {channel!r}: the channels are {', '.join(known)} (exact spelling)."
        )


def _customer_exists(warehouse: Warehouse, settings: Settings, customer_id: int) -> bool:
    if not BIGINT_MIN <= customer_id <= BIGINT_MAX:
        return False  # customer_id is a BIGINT: such an id cannot be stored
    customers = settings.relation("marts", "customer_channel_interactions")
    _, rows = warehouse.query(
        f"select count(*) from {customers} where customer_id = ?", (customer_id,)
    )
    return bool(rows[0][0] > 0)
