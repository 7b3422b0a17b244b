"""`make bench`'s start-up figures: the fixed cost of a build, apart from the work of its
nodes. Each step is `runner build` selecting no node (`--select tag:bench_selects_nothing`),
timed as a user runs it (the whole subprocess), on an empty warehouse of each engine:

- `runner --help`: Python's start and the runner's imports, the floor of every command;
- cold: no dbt target folder, so dbt parses the whole project (a fresh clone, a CI run);
- warm: the same command again: dbt's partial parsing reads its last parse back;
- next day: a new `--vars '{as_of_date: D}'`, as a daily build gives; the runner passes it
  to dbt in the environment (runner/as_of.py), which keeps the partial parse;
- with the freshness check: the next day again, plus `dbt source freshness` first (its own
  dbt invocation, on the build's parse: runner/dbt_invoke.py parse_for_build; one query per
  source);
- the reference: plain `dbt build` given the next day's date as a var, which makes dbt
  parse the whole project again (dbt compares the vars with its last parse's).

Each step's log says whether dbt parsed everything ("Unable to do partial parsing").
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from typing import Any

from devtools import bench

NOTHING = ["--select", "tag:bench_selects_nothing"]
AS_OF = date(2017, 4, 30)
FULL_PARSE = "Unable to do partial parsing"
REPETITIONS = 2  # at large scale (the default runs each step once)


def _vars(day: date) -> list[str]:
    return ["--vars", f"{{as_of_date: {day.isoformat()}}}"]


def steps(engine: str, day: date) -> list[tuple[str, list[str], bool]]:
    """(step, command, whether dbt's target folder is removed first), in the order run."""
    build = [bench.RUNNER, "build", "--target", engine]
    return [
        ("`runner --help` (Python and the runner's imports)", [bench.RUNNER, "--help"], False),
        ("cold: no target folder, dbt parses everything",
         [*build, "--no-freshness", "--", *NOTHING, *_vars(day)], True),
        ("warm: the same again (partial parse)",
         [*build, "--no-freshness", "--", *NOTHING, *_vars(day)], False),
        ("next day: a new as_of_date",
         [*build, "--no-freshness", "--", *NOTHING, *_vars(day + timedelta(days=1))], False),
        ("next day with the freshness check",
         [*build, "--", *NOTHING, *_vars(day + timedelta(days=2))], False),
        ("reference: plain `dbt build --vars` with a new date",
         [bench.DBT, "build", "--target", engine, *NOTHING, *_vars(day + timedelta(days=3))],
         False),
    ]  # fmt: skip


def bench_startup(ctx: bench.Context, budget: bench.Budget) -> None:
    result: dict[str, Any] = {"engines": {}}
    ctx.results["startup"] = result
    # dbt parses alike for every engine: the default scale (15 minutes in all) times DuckDB's
    # start-up once, the large one every engine's twice
    engines = ctx.engines if ctx.scale == "large" else ctx.engines[:1]
    wanted = REPETITIONS if ctx.scale == "large" else 1
    for index, engine in enumerate(engines):
        part = budget.part(1 / (len(engines) - index))
        result["engines"][engine] = engine_startup(ctx, engine, part, wanted)


def engine_startup(
    ctx: bench.Context, engine: str, budget: bench.Budget, wanted: int
) -> dict[str, Any]:
    name = ctx.pg_name("_startup") if engine == "postgres" else "startup"
    ctx.fresh(engine, name)
    env = ctx.env(engine, name)
    target = ctx.work / f"target-{engine}"
    seconds: dict[str, list[float]] = {}
    full: dict[str, list[bool]] = {}

    def one(rep: int) -> float:
        total = 0.0
        day = AS_OF + timedelta(days=10 * rep)  # every repetition's dates are new
        for number, (step, command, cold) in enumerate(steps(engine, day)):
            if cold:
                shutil.rmtree(target, ignore_errors=True)
            log_path = ctx.log(f"startup-{engine}-{rep}-{number}")
            log_path.unlink(missing_ok=True)
            timed = bench.run_checked(command, env, log_path)
            total += timed.seconds
            seconds.setdefault(step, []).append(timed.seconds)
            text = log_path.read_text(encoding="utf-8", errors="replace")
            full.setdefault(step, []).append(FULL_PARSE in text)
            bench.log(f"startup {engine} rep {rep + 1}: {step}: {timed.seconds:.1f} s")
        return total

    runs, trimmed = bench.repetitions(budget, wanted, one, f"startup {engine}")
    return {
        "runs": runs,
        "trimmed": trimmed,
        "steps": [
            {
                "step": step,
                "seconds": bench.summary(seconds[step]),
                "full_parse": any(full[step]),
                "partial_parse": not all(full[step]),
            }
            for step, _, _ in steps(engine, AS_OF)
            if step in seconds
        ],
    }


def render_startup(out: list[str], ctx: bench.Context, startup: dict[str, Any]) -> None:
    add = out.append
    add("## 7. Start-up: the fixed cost of a build\n")
    add(
        "`runner build` selecting no node (`--select tag:bench_selects_nothing`), the whole "
        "subprocess, on an empty warehouse: what every build pays before its first node "
        "(Python and dbt's imports, the profile, parsing, the graph, the warehouse "
        "connection). Cold: without dbt's target folder (a fresh clone or CI); warm: the "
        "same again; next day: a new `--vars '{as_of_date: D}'`, which `runner build` passes "
        "to dbt as DBT_AS_OF_DATE so that dbt's partial parse still holds; the reference: "
        "plain `dbt build --vars` with a new date, which makes dbt parse everything again. "
        "No target: figures.\n"
    )
    add("| engine | step | seconds | dbt parsed |")
    add("| --- | --- | ---: | --- |")
    for engine, entry in startup.get("engines", {}).items():
        for row in entry["steps"]:
            if row["step"].startswith("`runner --help`"):
                parsed = "-"
            elif row["full_parse"] and row["partial_parse"]:
                parsed = "everything in some runs"
            else:
                parsed = "everything" if row["full_parse"] else "only what changed"
            add(f"| {engine} | {row['step']} | {bench.fmt_seconds(row['seconds'])} | {parsed} |")
    add("")
