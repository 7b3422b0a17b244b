"""`make bench`'s messaging figure: messages per second through `runner message`'s HTTP
sender (runner/messaging.py TwilioSender) against the SMS gateway emulator on loopback, for
the cycle of a world's window end (bench.SCALES' "message" size: at default scale, smaller
than the build benchmark's, so the run fits its time), on each engine.

Setup (untimed): the world's store customers and app files are loaded, `customer_engagement`
is built at the world's window end, every current customer gets a phone number
(`runner load app-contacts`). Timed: `run_messaging` in this process (so dbt's start-up and
the build of the message marts that `runner message` runs afterwards are left out), from an
empty outbox: building the outbox, then one HTTP request per message (4 workers), each chunk
marked `sending` before its requests and each outcome written to the warehouse as it comes.
Checked after each run: every message delivered, each recipient reached once.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from devtools import bench
from devtools.sms_gateway_emulator import GatewayConfig, serve_in_thread

APP_SOURCES = ("store-customers", "app-sessions", "app-purchases")
TARGET = "No target: a figure (messages/s), with none lost or doubled"


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ replaced by `env` while the block runs (the runner reads its target's
    connection from the environment, as in a subprocess)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def prepare(ctx: bench.Context, engine: str, name: str, world: bench.World) -> int:
    """The world's app side built at its window end, every current customer with a number;
    the number of current customers."""
    ctx.fresh(engine, name)
    env = ctx.env(engine, name)
    log = ctx.log(f"message-setup-{engine}")
    for item in world.loads:
        if item["source"] not in APP_SOURCES:
            continue
        command = [bench.RUNNER, "load", item["source"], item["path"], "--target", engine]
        if item["extract_date"]:
            command += ["--extract-date", item["extract_date"], "--no-snapshot"]
        bench.run_checked(command, env, log)
    as_of = f"{{as_of_date: {world.window_end.isoformat()}}}"
    build = [bench.RUNNER, "build", "--no-freshness", "--target", engine, "--", "--vars", as_of,
             "--indirect-selection", "cautious"]  # fmt: skip
    bench.run_checked([*build, "--select", "+customer_engagement"], env, log)
    query = "select customer_id from marts.customer_engagement order by customer_id"
    ids = [row[0] for row in ctx.query(engine, name, query)]
    contacts = ctx.work / f"contacts-{engine}.csv"
    contacts.write_text(
        "customer_id,phone_number\n"
        + "".join(f"{cid},+1555{n:07d}\n" for n, cid in enumerate(ids)),
        encoding="utf-8",
    )
    bench.run_checked(
        [bench.RUNNER, "load", "app-contacts", str(contacts), "--target", engine], env, log
    )
    bench.run_checked([*build, "--select", "+stg_app__contacts"], env, log)
    return len(ids)


def bench_message(ctx: bench.Context, budget: bench.Budget) -> None:
    from runner.config import MessagingSettings, load_settings
    from runner.messaging import run_messaging
    from runner.warehouse import connect

    world = bench.ensure_world(bench.customers_for_events(bench.SCALES[ctx.scale]["message"]))
    result: dict[str, Any] = {"world": world.describe(), "target": TARGET}
    ctx.results["message"] = result
    for index, engine in enumerate(ctx.engines):
        part = budget.part(1 / (len(ctx.engines) - index))
        name = "message" if engine == "duckdb" else ctx.pg_name("_msg")
        entry: dict[str, Any] = {}
        result[engine] = entry
        rates: list[float] = []
        checks: list[dict[str, Any]] = []
        try:
            entry["customers"] = prepare(ctx, engine, name, world)
            env = ctx.env(engine, name)

            def one(
                rep: int, engine: str = engine, env: dict[str, str] = env,
                rates: list[float] = rates, checks: list[dict[str, Any]] = checks,
            ) -> float:  # fmt: skip
                with serve_in_thread(GatewayConfig()) as gateway, environment(env):
                    settings = load_settings(
                        target=engine, project_dir=bench.REPO, profiles_dir=ctx.work / "profiles"
                    )
                    messaging = MessagingSettings.from_environment(
                        bench.REPO, {**env, **gateway.environment()}
                    )
                    with connect(settings) as warehouse:
                        outbox = settings.relation("raw", "app_messages")
                        warehouse.ensure_raw_tables()
                        warehouse.execute(f"delete from {outbox}")
                        started = time.perf_counter()
                        summary = run_messaging(warehouse, settings, messaging)
                        seconds = time.perf_counter() - started
                    recipients = gateway.stats.per_recipient()
                sent = summary.outcomes["queued"] + summary.outcomes["sent"]
                check = {
                    "messages": summary.rendered,
                    "delivered": sent,
                    "failed": summary.failed,
                    "doubled": sum(n - 1 for n in recipients.values() if n > 1),
                    "seconds": seconds,
                }
                check["ok"] = sent == summary.rendered == len(recipients) and not check["doubled"]
                checks.append(check)
                rates.append(sent / seconds if seconds else 0.0)
                bench.log(f"message {engine} rep {rep + 1}: {sent} messages in {seconds:.1f} s")
                return seconds

            _, trimmed = bench.repetitions(part, ctx.repeat, one, f"message {engine}")
            entry.update(
                rate=bench.summary(rates),
                checks=checks,
                all_ok=all(c["ok"] for c in checks),
                trimmed=trimmed,
            )
        except bench.BenchError as exc:
            entry["error"] = str(exc)
            bench.log(f"message {engine} failed: {exc}")
        finally:
            ctx.drop(engine, name)


def render_message(out: list[str], ctx: bench.Context, result: dict[str, Any]) -> None:
    add = out.append
    world = result.get("world", {})
    add("## 6. `runner message`, the HTTP sender against the SMS gateway emulator\n")
    add(
        "The messaging cycle of a generated world "
        f"({world.get('customers', 0):,} customers, {world.get('web_events', 0):,} web events, "
        "window ending "
        f"{world.get('window_end', '?')}), sent from an empty outbox through the Twilio-shaped "
        "HTTP sender to `devtools/sms_gateway_emulator.py` on loopback (no latency, no "
        "faults, in this process): one request per message from 4 workers, each chunk of "
        "messages marked `sending` in one transaction before its requests and each outcome "
        "written as it comes. Timed in-process (`run_messaging`), without dbt's start-up and "
        f"the build of the message marts. {result.get('target', TARGET)}.\n"
    )
    add("| engine | customers | messages | messages/s | lost / doubled |")
    add("| --- | ---: | ---: | ---: | --- |")
    for engine in bench.ENGINES:
        entry = result.get(engine)
        if not entry:
            continue
        if "error" in entry:
            add(f"| {engine} | failed: {entry['error'][:200]} | | | |")
            continue
        last = entry["checks"][-1]
        lost = sum(c["messages"] - c["delivered"] for c in entry["checks"])
        doubled = sum(c["doubled"] for c in entry["checks"])
        add(
            f"| {engine} | {entry['customers']:,} | {last['messages']:,} | "
            f"{bench.fmt_rate(entry['rate'])} | {lost} / {doubled} |"
        )
    add("")
