"""How often one CRM customer interacted with the company, per channel.

Reads three marts: `customer_channel_interactions` (one row per CRM customer: tells
whether a customer exists), `fct_crm_interactions` (one row per valid interaction) and
`dim_crm_channels` (every known channel, in display order), in the marts schema of the
settings' target (Settings.schema("marts")). Shared by the `runner interactions`
command and the HTTP API.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from runner.config import Settings
from runner.errors import RunnerError
from runner.warehouse import Warehouse

MARTS = ("customer_channel_interactions", "fct_crm_interactions", "dim_crm_channels")
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


class UnknownCustomer(RunnerError):
    """The customer id is not a CRM customer of the warehouse."""


class InvalidFilter(RunnerError):
    """The filters contradict each other (e.g. `since` after `until`)."""


def require_marts(warehouse: Warehouse, settings: Settings) -> None:
    """Fail with what to do when any of the marts this module reads is missing."""
    _, rows = warehouse.query(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_name in (?, ?, ?)",
        (settings.schema("marts"), *MARTS),
    )
    missing = [table for table in MARTS if table not in {row[0] for row in rows}]
    if missing:
        names = ", ".join(settings.relation("marts", table) for table in missing)
        raise RunnerError(
            f"{names} {'does' if len(missing) == 1 else 'do'} not exist yet in this warehouse. "
            "Load data and run `runner build` first."
        )


def customer_interactions(
    warehouse: Warehouse,
    settings: Settings,
    customer_id: int,
    topic: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """The customer's interactions counted per channel, every known channel included
    (zero when none), in the channels' display order:

        {"data": {"customer_id": 42, "interactions": {"Email": 2, "Call": 0, ...}}}

    `topic` keeps only interactions about exactly that topic; `since` and `until` keep
    only interactions on or after / on or before those days (both inclusive).

    Raises UnknownCustomer when the customer is not in the warehouse, InvalidFilter when
    `since` is after `until`, and RunnerError when the marts are not built yet.
    """
    if since is not None and until is not None and since > until:
        raise InvalidFilter(f"since ({since}) is after until ({until}): nothing can match.")
    require_marts(warehouse, settings)
    if not _customer_exists(warehouse, settings, customer_id):
        raise UnknownCustomer(f"No CRM customer with id {customer_id}.")

    conditions = ["i.customer_id = ?"]
    params: list[Any] = [customer_id]
    if topic is not None:
        conditions.append("i.topic = ?")
        params.append(topic)
    if since is not None:
        conditions.append("i.interaction_date >= ?")
        params.append(since)
    if until is not None:
        conditions.append("i.interaction_date <= ?")
        params.append(until)
    # The filters sit in the join condition, so channels without a match still get a row.
    _, rows = warehouse.query(
        "select c.channel, count(i.customer_id) as interactions "
        f"from {settings.relation('marts', 'dim_crm_channels')} as c "
        f"left join {settings.relation('marts', 'fct_crm_interactions')} as i "
        f"on i.channel = c.channel and {' and '.join(conditions)} "
        "group by c.channel, c.display_order "
        "order by c.display_order, c.channel",
        params,
    )
    counts = {channel: int(count) for channel, count in rows}
    return {"data": {"customer_id": customer_id, "interactions": counts}}


def _customer_exists(warehouse: Warehouse, settings: Settings, customer_id: int) -> bool:
    if not BIGINT_MIN <= customer_id <= BIGINT_MAX:
        return False  # customer_id is a BIGINT: such an id cannot be stored
    customers = settings.relation("marts", "customer_channel_interactions")
    _, rows = warehouse.query(
        f"select count(*) from {customers} where customer_id = ?", (customer_id,)
    )
    return bool(rows[0][0] > 0)
