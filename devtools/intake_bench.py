"""The load test of the app events' HTTP intake (runner.intake), for `make bench`.

A real `runner serve` on loopback, a fresh warehouse and spool per engine, and a small
bounded client of its own: CLIENTS threads, each with its own keep-alive connection,
POSTing to /api/v1/app/sessions for SECONDS seconds, one event per request and then
batches of BATCH events, every event with a new event_id. For each mode: events
accepted per second (answered 202, so committed to the spool), and the p50 and p99
latency of a request. Then `runner load app-intake` lands all of them: events landed
per second, and a check that the raw table holds each accepted event exactly once.

    .venv/bin/python -m devtools.bench --only intake     # as part of the suite
"""

from __future__ import annotations

import itertools
import json
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

CLIENTS = 8
SECONDS = 10.0
BATCH = 100
MODES = (("single", 1), ("batch", BATCH))
ROUTE = "/api/v1/app/sessions"
# The key the benchmark's server accepts (RUNNER_API_KEYS) and its clients send.
API_KEY = "bench-intake-key-not-secret"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TARGET = "none set: the figures are reported"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def load_test(base: str, per_request: int, prefix: str) -> dict[str, Any]:
    """CLIENTS threads POSTing `per_request` new events a request for SECONDS seconds."""
    numbers = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    accepted = [0]
    stop_at = time.monotonic() + SECONDS

    def client() -> None:
        mine: list[float] = []
        count = 0
        with requests.Session() as session:
            while time.monotonic() < stop_at and not failures:
                first = next(numbers) * per_request
                events = [
                    {
                        "event_id": f"{prefix}-{first + n}",
                        "customer_id": str((first + n) % 5000),
                        "session_started_at": "2019-04-02T10:00:00Z",
                    }
                    for n in range(per_request)
                ]
                body = json.dumps(events if per_request > 1 else events[0])
                started = time.perf_counter()
                response = session.post(
                    base + ROUTE,
                    data=body,
                    headers={"content-type": "application/json", **AUTH},
                    timeout=60,
                )
                mine.append(time.perf_counter() - started)
                if response.status_code != 202:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    break
                count += response.json()["accepted"] - response.json()["duplicates"]
        with lock:
            latencies.extend(mine)
            accepted[0] += count

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"the intake answered {failures[0]}")
    return {
        "events_per_request": per_request,
        "requests": len(latencies),
        "events": accepted[0],
        "seconds": elapsed,
        "events_per_second": accepted[0] / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
    }


def bench_intake(ctx: Any, runner: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The intake's figures on each engine of `ctx` (devtools.bench.Context)."""
    result: dict[str, Any] = {"clients": CLIENTS, "seconds": SECONDS, "target": TARGET}
    for engine in ctx.engines:
        name = "intake" if engine == "duckdb" else ctx.pg_name("_intake")
        ctx.fresh(engine, name)
        spool_dir = ctx.work / f"intake-{engine}"
        env = {
            **ctx.env(engine, name),
            "RUNNER_INTAKE_DIR": str(spool_dir),
            "RUNNER_API_KEYS": API_KEY,  # every route but /health needs a key
        }
        entry: dict[str, Any] = {}
        result[engine] = entry
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        serve_log = ctx.log(f"intake-serve-{engine}")
        serve_log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with serve_log.open("w") as out:
                server = subprocess.Popen(
                    [runner, "serve", "--target", engine, "--port", str(port)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                _wait_until_up(base, server, serve_log)
                for mode, per_request in MODES:
                    entry[mode] = load_test(base, per_request, f"{engine}-{mode}")
                    figures = entry[mode]
                    log(
                        f"intake {engine} {mode}: {figures['events_per_second']:,.0f} events/s, "
                        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
                    )
            finally:
                server.terminate()
                server.wait(timeout=60)
            total = sum(entry[mode]["events"] for mode, _ in MODES)
            started = time.perf_counter()
            land_log = ctx.log(f"intake-land-{engine}")
            with land_log.open("w") as out:
                landed = subprocess.run(
                    [runner, "load", "app-intake", "--target", engine],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            seconds = time.perf_counter() - started
            if landed.returncode != 0:
                raise RuntimeError(f"runner load app-intake failed: {land_log.read_text()[-500:]}")
            raw = "raw.app_sessions"
            [(rows, distinct)] = ctx.query(
                engine, name, f"select count(*), count(distinct event_id) from {raw}"
            )
            entry["landing"] = {
                "events": total,
                "seconds": seconds,
                "events_per_second": total / seconds,
                "rows": rows,
                "ok": rows == distinct == total,
            }
            log(
                f"intake {engine}: landed {rows:,} of {total:,} events in {seconds:.1f} s "
                f"(the whole `runner load app-intake`), ok={entry['landing']['ok']}"
            )
        except Exception as exc:
            entry["error"] = str(exc)
            log(f"intake {engine} failed: {exc}")
        finally:
            ctx.drop(engine, name)
    return result


def _wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"runner serve exited: {log.read_text()[-500:]}")
        try:
            if requests.get(base + "/health", timeout=5).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("runner serve did not answer within 2 minutes")


def render_intake(out: list[str], section: dict[str, Any]) -> None:
    """The report's section on the intake."""
    add = out.append
    add("## 5. App event intake, `POST /api/v1/app/sessions`\n")
    add(
        f"`runner serve` on loopback, {section['clients']} client threads (keep-alive "
        f"connections) for {section['seconds']:.0f} s per mode, each event a new event_id: "
        f"one event per request, then batches of {BATCH}. Accepted means answered 202, "
        "committed (fsync'd) to the intake spool. Landing: the whole `runner load "
        "app-intake` of every accepted event, then a check that raw.app_sessions holds "
        f"each exactly once. Target: {section['target']}.\n"
    )
    add(
        "| engine | single: events/s | p50 | p99 | batch: events/s | p50 | p99 | "
        "landing: events/s | each once |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for engine in ("duckdb", "postgres"):
        entry = section.get(engine)
        if entry is None:
            continue
        if "error" in entry:
            add(f"| {engine} | failed: {entry['error'][:200]} | | | | | | | |")
            continue
        single, batch, landing = entry["single"], entry["batch"], entry["landing"]
        add(
            f"| {engine} | {single['events_per_second']:,.0f} | {single['p50_ms']:.1f} ms | "
            f"{single['p99_ms']:.1f} ms | {batch['events_per_second']:,.0f} | "
            f"{batch['p50_ms']:.1f} ms | {batch['p99_ms']:.1f} ms | "
            f"{landing['events_per_second']:,.0f} ({landing['events']:,} events) | "
            f"{'yes' if landing['ok'] else 'NO'} |"
        )
    add("")
