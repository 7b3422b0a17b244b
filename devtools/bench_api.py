"""`make bench`'s API figure: `GET /api/v1/interactions/{customer_id}` under CLIENTS
concurrent clients for SECONDS seconds while builds run, on each engine.

Setup (untimed): the build benchmark's world is loaded and built (`runner build`, models
only) into a fresh warehouse; the CRM customer ids are read from the marts. Then a real
`runner serve` on loopback (with an API key, as in production), and full-refresh builds
of the same warehouse one after another in the background for the whole window (on
DuckDB the API reads the copy of the marts each build publishes; on PostgreSQL the
warehouse itself). The client is this process: CLIENTS threads, each with its own
keep-alive connection, asking for random customers as fast as answers come (bounded: one
request in flight per client). Reported: requests per second, p50 and p99 latency, the
answers that were not 200, and how many builds ran during the window.

The client's threads share these 2 cores with the server and the build, so a latency
here includes the client's own wait for the CPU: an upper bound of what a client on
another machine would see.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import threading
import time
from typing import Any

import requests

from devtools import bench
from devtools.intake_bench import _free_port, _percentile, _wait_until_up

CLIENTS = 50
SECONDS = 30.0
TARGET_P99_MS = 100.0
TARGET = f"p99 < {TARGET_P99_MS:.0f} ms with {CLIENTS} clients for {SECONDS:.0f} s during builds"
API_KEY = "bench-api-key-not-secret"
ROUTE = "/api/v1/interactions/{}"


def bench_api(ctx: bench.Context, budget: bench.Budget) -> None:
    events = bench.SCALES[ctx.scale]["build"]["duckdb"][0]
    world = bench.ensure_world(bench.customers_for_events(events))
    result: dict[str, Any] = {
        "clients": CLIENTS,
        "seconds": SECONDS,
        "target": TARGET,
        "world": world.describe(),
        "engines": {},
    }
    ctx.results["api"] = result
    for engine in ctx.engines:
        entry: dict[str, Any] = {}
        result["engines"][engine] = entry
        name = "api" if engine == "duckdb" else ctx.pg_name("_api")
        try:
            entry.update(engine_api(ctx, engine, name, world))
            bench.log(
                f"api {engine}: {entry['requests_per_second']:,.0f} requests/s, p50 "
                f"{entry['p50_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms, "
                f"{entry['builds_during']} builds during the window"
            )
        except (bench.BenchError, RuntimeError) as exc:
            entry["error"] = str(exc)
            bench.log(f"api {engine} failed: {exc}")
        finally:
            ctx.drop(engine, name)


def engine_api(ctx: bench.Context, engine: str, name: str, world: bench.World) -> dict[str, Any]:
    ctx.fresh(engine, name)
    bench.log(f"api {engine}: loading and building {world.folder.name} (setup)")
    bench.load_world(ctx, engine, name, world, f"api-{engine}")
    build = bench.build_command(engine, world.window_end, False, bench.MODELS_ONLY)
    env = {**ctx.env(engine, name), "RUNNER_API_KEYS": API_KEY}
    bench.run_checked(build, env, ctx.log(f"api-setup-{engine}"))
    ids = [
        row[0]
        for row in ctx.query(
            engine, name, "select customer_id from marts.customer_channel_interactions"
        )
    ]
    if not ids:
        raise RuntimeError("the world has no CRM customers to ask for")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log = ctx.log(f"api-serve-{engine}")
    with serve_log.open("w") as out:
        server = subprocess.Popen(
            [bench.RUNNER, "serve", "--target", engine, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(base, server, serve_log)
        builds = Builds(bench.build_command(engine, world.window_end, True), env, ctx)
        builds.start()
        try:
            time.sleep(3)  # the first build is past dbt's start-up, into its nodes
            figures = load_test(base, ids)
        finally:
            during = builds.stop()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        **figures,
        "customers": len(ids),
        "builds_during": during,
        "passed": figures["p99_ms"] < TARGET_P99_MS and not figures["not_ok"],
    }


class Builds:
    """Builds of the warehouse one after another on a thread until stop(); a build that
    fails is an error of the benchmark (the API must not break a build, nor the reverse)."""

    def __init__(self, command: list[str], env: dict[str, str], ctx: bench.Context):
        self.command, self.env, self.ctx = command, env, ctx
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        log = self.ctx.log("api-builds")
        while not self.stopping.is_set():
            with log.open("ab") as out:
                self.process = subprocess.Popen(
                    self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
                self.started += 1
                code = self.process.wait()
            if code != 0 and not self.stopping.is_set():
                self.failure = f"a build during the load test failed (exit {code}); see {log}"
                return

    def stop(self) -> int:
        """Stop after the load test: the running build is ended (SIGTERM, as a user's
        Ctrl-C would); the number of builds that ran during the window."""
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
        self.thread.join(timeout=120)
        if self.failure:
            raise RuntimeError(self.failure)
        return self.started


def load_test(base: str, ids: list[Any]) -> dict[str, Any]:
    lock = threading.Lock()
    latencies: list[float] = []
    not_ok: dict[str, int] = {}
    stop_at = time.monotonic() + SECONDS

    def client(seed: int) -> None:
        pick = random.Random(seed).choice
        mine: list[float] = []
        statuses: dict[str, int] = {}
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {API_KEY}"
            while time.monotonic() < stop_at:
                url = base + ROUTE.format(pick(ids))
                started = time.perf_counter()
                try:
                    status = str(session.get(url, timeout=30).status_code)
                except requests.RequestException as exc:
                    status = type(exc).__name__
                mine.append(time.perf_counter() - started)
                if status != "200":
                    statuses[status] = statuses.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for status, count in statuses.items():
                not_ok[status] = not_ok.get(status, 0) + count

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    elapsed = time.monotonic() - started
    if not latencies:
        raise RuntimeError("no request was answered")
    return {
        "requests": len(latencies),
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "not_ok": not_ok,
    }


def render_api(out: list[str], ctx: bench.Context, api: dict[str, Any]) -> None:
    add = out.append
    add("## 8. The API during builds, `GET /api/v1/interactions/{customer_id}`\n")
    world = api.get("world", {})
    add(
        f"`runner serve` on loopback over the build world ({world.get('customers', 0):,} "
        f"customers, built at {world.get('window_end')}), {api['clients']} client threads "
        "in the benchmark's process (keep-alive connections, one request in flight each, a "
        f"random CRM customer each time) for {api['seconds']:.0f} s, while full-refresh "
        "builds of the same warehouse run one after another. The clients share the 2 cores "
        "with the server and the build: their latency includes their own wait for the CPU. "
        f"Target: {api['target']}.\n"
    )
    add("| engine | customers | requests/s | p50 | p99 | max | not 200 | builds | result |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for engine, entry in api.get("engines", {}).items():
        if "error" in entry:
            add(f"| {engine} | - | - | - | - | - | - | - | failed: {entry['error'][:200]} |")
            continue
        bad = ", ".join(f"{k}: {v}" for k, v in entry["not_ok"].items()) or "none"
        add(
            f"| {engine} | {entry['customers']:,} | {entry['requests_per_second']:,.0f} | "
            f"{entry['p50_ms']:.1f} ms | {entry['p99_ms']:.1f} ms | {entry['max_ms']:.0f} ms | "
            f"{bad} | {entry['builds_during']} | {bench.verdict(entry['passed'])} |"
        )
    add("")
