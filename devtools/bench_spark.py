"""`make bench`'s Spark figures: the build world landed on Spark (`runner load ... --target
spark`, every source as `make demo` loads it), then full builds of it on Spark
(`runner build --target spark -- --full-refresh`, every model and data test, as the other
engines' build section runs them) with `SPARK_MASTER=local[2]` and `local[1]`: what the
second core buys. Beside them, the DuckDB build of the same world in the same run.

Spark here is dbt-spark's session method: PySpark in the runner's process, the embedded
Derby metastore and the Parquet files in the run's own SPARK_DATA_DIR. Each build is the
whole subprocess, so it includes the JVM's start (reported apart: `runner build`
selecting no node). About 9 minutes at the default scale, on top of the other sections'
15. Without pyspark (`make setup-spark`) the section says so and measures nothing.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from devtools import bench

MASTERS = ("local[2]", "local[1]")
NAME = "spark"  # the run's SPARK_DATA_DIR: <work>/spark-spark
NOTHING = ["--select", "tag:bench_selects_nothing"]


def bench_spark(ctx: bench.Context, budget: bench.Budget) -> None:
    events = bench.SCALES[ctx.scale]["build"]["duckdb"][0]
    world = bench.ensure_world(bench.customers_for_events(events))
    result: dict[str, Any] = {"world": world.describe(), "builds": {}}
    ctx.results["spark"] = result
    if importlib.util.find_spec("pyspark") is None:
        result["skipped"] = "pyspark is not installed: run `make setup-spark` first"
        bench.log(f"spark: {result['skipped']}")
        return
    wanted = ctx.repeat if ctx.repeat_given else 1

    ctx.fresh("duckdb", "spark_reference")
    bench.load_world(ctx, "duckdb", "spark_reference", world, "spark-duckdb")
    seconds: dict[str, list[float]] = {}
    nodes: dict[str, Any] = {}

    def build(label: str, engine: str, name: str, master: str | None) -> float:
        env = ctx.env(engine, name)
        if master:
            env["SPARK_MASTER"] = master
        command = bench.build_command(engine, world.window_end, True)
        timed = bench.run_checked(command, env, ctx.log(f"spark-build-{label}"))
        seconds.setdefault(label, []).append(timed.seconds)
        nodes[label] = bench.dbt_timing(ctx, engine, f"spark-build-{label}")
        bench.log(f"spark: build {label}: {timed.seconds:.1f} s")
        return timed.seconds

    bench.log(f"spark: landing {world.folder.name} on Spark")
    result["spark_landing_seconds"] = bench.load_world(ctx, "spark", NAME, world, "spark-spark")
    start_up = bench.run_checked(
        [bench.RUNNER, "build", "--target", "spark", "--no-freshness", "--", *NOTHING],
        ctx.env("spark", NAME),
        ctx.log("spark-start-up"),
    )
    result["start_up_seconds"] = start_up.seconds

    def one(rep: int) -> float:
        total = build("duckdb", "duckdb", "spark_reference", None)
        for master in MASTERS:
            total += build(master, "spark", NAME, master)
        return total

    runs, trimmed = bench.repetitions(budget, wanted, one, "spark")
    ctx.drop("duckdb", "spark_reference")
    result.update(runs=runs, trimmed=trimmed)
    for label, values in seconds.items():
        result["builds"][label] = {"seconds": bench.summary(values), "nodes": nodes[label]}
    if runs:
        duckdb = bench.summary(seconds["duckdb"])["median"]
        one_core = bench.summary(seconds["local[1]"])["median"]
        two_cores = bench.summary(seconds["local[2]"])["median"]
        result["spark_over_duckdb"] = two_cores / duckdb
        result["second_core_speedup"] = one_core / two_cores


def render_spark(out: list[str], ctx: bench.Context, spark: dict[str, Any]) -> None:
    add = out.append
    add("## 9. The same build on Apache Spark\n")
    add(
        "The build world landed on Spark (dbt-spark's session method, local PySpark, the "
        "embedded metastore), then `runner build --target spark -- --full-refresh` (every "
        "model and data test) with `SPARK_MASTER=local[2]` and `local[1]`, beside the DuckDB "
        "build of the same world in the same run. Each build is the whole subprocess, JVM "
        "start included. No target: figures.\n"
    )
    if "skipped" in spark or "error" in spark:
        add(f"Not measured: {spark.get('skipped') or spark['error']}.\n")
        return
    add(f"World: {spark['world'].get('web_events', '?'):,} web events. "
        f"Landing every source on Spark: {spark['spark_landing_seconds']:.0f} s "
        f"(one `runner load` per file, each starting its JVM). `runner build` selecting "
        f"no node on Spark: {spark['start_up_seconds']:.1f} s.\n")  # fmt: skip
    add("| engine | full build | dbt's slowest nodes |")
    add("| --- | ---: | --- |")
    for label, entry in spark["builds"].items():
        engine = "duckdb" if label == "duckdb" else f"spark, `{label}`"
        slowest = ", ".join(
            f"{node['id'].rsplit('.', 1)[-1]} {node['seconds']:.1f} s"
            for node in entry["nodes"].get("top", [])[:3]
        )
        add(f"| {engine} | {bench.fmt_seconds(entry['seconds'])} | {slowest} |")
    add("")
    add("Where the time goes (dbt's run_results.json):\n")
    for label, entry in spark["builds"].items():
        timing = entry["nodes"]
        if "by_type" not in timing:
            continue
        kinds = sorted(timing["by_type"].items(), key=lambda item: -item[1]["seconds"])
        parts = ", ".join(
            f"{kind} {d['count']} ({d['seconds']:.1f} s)"
            for kind, d in kinds
            if d["seconds"] >= 0.1
        )
        add(f"- {label}: {timing['count']} nodes, {timing['sum_seconds']:.1f} s in them: {parts}")
    add(
        "- dbt runs one node at a time on the `spark` target (`threads: 1` in "
        "profiles.yml.example), so a second core helps only inside a node. Most nodes are "
        "small, and each pays Spark's fixed cost of a query (planning, a job, its Parquet "
        "files).\n"
    )
    if spark.get("runs"):
        add(f"- Spark (`local[2]`) ÷ DuckDB: {spark['spark_over_duckdb']:.1f}x")
        add(f"- `local[1]` ÷ `local[2]`: {spark['second_core_speedup']:.2f}x (what the "
            "second core buys)")  # fmt: skip
    add("")
