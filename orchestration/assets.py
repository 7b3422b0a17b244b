"""The code location's assets, checks, jobs, schedules and sensors, built for one
target's settings (orchestration.definitions builds them for DBT_TARGET)."""

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import requests
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSelection,
    AssetSpec,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    Failure,
    MaterializeResult,
    RunFailureSensorContext,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    multi_asset,
    multi_asset_check,
    run_failure_sensor,
    schedule,
    sensor,
)
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration import landing
from orchestration.project import (
    LayerTranslator,
    dbt_project,
    prepare_manifest,
    project_var,
    source_keys,
    source_selector,
)
from runner.as_of import as_of_in_environment
from runner.config import Settings
from runner.sources import LOAD_COMMANDS, LoadCommand, sources_of

# The dbt sources the runner writes itself (attribution, messaging): the dbt models
# downstream of them are a second dbt op, after the runner's steps, so the graph has
# no cycle (journeys -> attribution -> results -> channel marts).
ATTRIBUTION_TABLES = ("attribution_customer_journey", "attribution_rejects", "attribution_runs")
OUTBOX_TABLE = "app_messages"
WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
BUILD_HOUR_VARIABLE = "DAGSTER_BUILD_HOUR"
DEFAULT_BUILD_HOUR = 6
MESSAGE_WEEKDAY = 1  # cron: Monday, after the daily build
# Messaging cycles are counted in whole weeks from this Monday.
CYCLE_ANCHOR = date(1970, 1, 5)


class DbtBuildConfig(Config):
    """`as_of_date` (YYYY-MM-DD, or `today`) for the build, given to dbt as DBT_AS_OF_DATE
    (a var would make dbt parse the whole project again each day); empty: the rule of
    macros/as_of_date.sql (the remembered date, else today)."""

    as_of_date: str = ""


class LandingConfig(Config):
    """The arrivals to land, by name in the landing folder; empty: every one waiting."""

    files: list[str] = []  # noqa: RUF012 (pydantic copies defaults)


def _op_name(command: LoadCommand) -> str:
    return "land_" + command.name.replace("-", "_")


def build_hour() -> int:
    value = os.environ.get(BUILD_HOUR_VARIABLE, str(DEFAULT_BUILD_HOUR))
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise ValueError(f"{BUILD_HOUR_VARIABLE} must be an hour from 0 to 23, got {value!r}.")
    return int(value)


def is_cycle_week(day: date, weeks: int) -> bool:
    """Whether the week of `day` starts a messaging cycle (every `weeks` weeks)."""
    return ((day - CYCLE_ANCHOR).days // 7) % weeks == 0


def post_alert(url: str, payload: Mapping[str, Any]) -> None:
    response = requests.post(url, json=payload, timeout=10)
    response.raise_for_status()


def build_definitions(settings: Settings) -> Definitions:
    """Everything of the code location, on the settings' target."""
    manifest_path = prepare_manifest(settings)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    project = dbt_project(settings)
    keys = source_keys(manifest, project)
    runner_written = [*ATTRIBUTION_TABLES, OUTBOX_TABLE]
    after_runner = " ".join(f"{source_selector(manifest, t)}+" for t in runner_written)
    folder = landing.landing_dir(settings)
    for command in LOAD_COMMANDS:  # where to drop files, there from the start
        (folder / command.name).mkdir(parents=True, exist_ok=True)

    def publish() -> None:
        from runner.serving import publish_after_build

        publish_after_build(settings)  # DuckDB: the copy of the marts `runner serve` reads

    translator = LayerTranslator()

    @dbt_assets(
        manifest=manifest,
        project=project,
        exclude=after_runner,
        name="dbt_models",
        dagster_dbt_translator=translator,
    )
    def dbt_models(
        context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ) -> Iterator[Any]:
        with as_of_in_environment(config.as_of_date or None):  # keeps dbt's partial parse
            yield from dbt.cli(["build"], context=context).stream()
        publish()

    @dbt_assets(manifest=manifest, project=project, select=after_runner, name="dbt_after_runner")
    def dbt_after_runner(
        context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ) -> Iterator[Any]:
        with as_of_in_environment(config.as_of_date or None):  # keeps dbt's partial parse
            yield from dbt.cli(["build"], context=context).stream()
        publish()

    journeys = next(key for key in dbt_models.keys if key.path[-1] == "int_journeys_built")
    engagement = next(key for key in dbt_models.keys if key.path[-1] == "customer_engagement")

    @multi_asset(
        name="attribution",
        specs=[
            AssetSpec(keys[table], deps=[journeys], group_name="runner", kinds={"python"})
            for table in ATTRIBUTION_TABLES
        ],
        description="`runner attribute`: the journeys to the IHC API, the results back "
        "to raw.attribution_customer_journey (IHC_API_KEY, IHC_API_URL, IHC_CONV_TYPE_ID).",
    )
    def attribution(context: AssetExecutionContext) -> Iterator[MaterializeResult[None]]:
        from runner.attribution import AttributionOptions, run_attribution
        from runner.warehouse import connect

        api_key = os.environ.get("IHC_API_KEY", "")
        conv_type_id = os.environ.get("IHC_CONV_TYPE_ID", "")
        if not api_key or not conv_type_id:
            raise Failure(
                "Attribution needs IHC_API_KEY and IHC_CONV_TYPE_ID in the environment of "
                "Dagster (make orchestrate starts the local IHC emulator when IHC_API_KEY "
                "is not set); set them and re-execute this run."
            )
        options = AttributionOptions(
            api_url=os.environ.get("IHC_API_URL", "https://api.ihc-attribution.com"),
            api_key=api_key,
            conv_type_id=conv_type_id,
        )
        with connect(settings) as warehouse:
            summary = run_attribution(warehouse, settings, options)
        context.log.info(summary.describe())
        if not summary.complete:
            raise Failure(
                f"Attribution incomplete: {summary.without_results()}. Re-execute the run "
                "to retry them (conversions with results are not sent again)."
            )
        for table in ATTRIBUTION_TABLES:
            yield MaterializeResult(asset_key=keys[table])

    @multi_asset(
        name="messaging",
        specs=[AssetSpec(keys[OUTBOX_TABLE], deps=[engagement], group_name="runner",
                         kinds={"python"})],
        description="`runner message`: the messaging cycle's outbox (raw.app_messages), "
        "sent by RUNNER_MESSAGE_SENDER.",
    )  # fmt: skip
    def messaging(context: AssetExecutionContext) -> MaterializeResult[None]:
        from runner.config import MessagingSettings
        from runner.messaging import run_messaging
        from runner.warehouse import connect

        options = MessagingSettings.from_environment(settings.project_dir)
        with connect(settings) as warehouse:
            summary = run_messaging(warehouse, settings, options)
        context.log.info(summary.describe())
        if not summary.complete:
            raise Failure(
                f"{summary.failed} messages failed: {summary.describe()} Re-execute the "
                "run to retry them (what was sent is not sent again)."
            )
        return MaterializeResult(asset_key=keys[OUTBOX_TABLE])

    def raw_asset(command: LoadCommand) -> Any:
        tables = [source.table for source in sources_of(command)]
        subfolder = folder / command.name

        @multi_asset(
            name=_op_name(command),
            specs=[AssetSpec(keys[t], group_name="raw", kinds={"python"}) for t in tables],
            description=f"`{command.invocation}` of the files dropped into {subfolder}.",
        )
        def land_files(
            context: AssetExecutionContext, config: LandingConfig
        ) -> Iterator[MaterializeResult[None]]:
            names = config.files or [
                a.path.name for a in landing.waiting(subfolder, time.time(), 0)
            ]
            for name in names:
                path = subfolder / name
                if not path.exists():
                    context.log.info(f"{path} is gone (landed by an earlier run): skipped.")
                    continue
                try:
                    landed = landing.land(settings, command, path)
                except landing.LandingFailed as exc:
                    context.log.error(str(exc))
                    raise Failure(str(exc)) from exc
                for line in landed.summaries:
                    context.log.info(line)
            for table in tables:
                yield MaterializeResult(asset_key=keys[table], metadata={"files": names})

        return land_files

    raw_assets = {command.name: raw_asset(command) for command in LOAD_COMMANDS}

    freshness_specs = [
        AssetCheckSpec("freshness", asset=keys[source["identifier"]])
        for source in manifest["sources"].values()
        if source.get("loaded_at_field") and (source.get("freshness") or {}).get("warn_after",
                                                                               {}).get("count")
    ]  # fmt: skip
    by_key = {
        keys[source["identifier"]]: unique_id for unique_id, source in manifest["sources"].items()
    }

    @multi_asset_check(specs=freshness_specs, can_subset=True, name="source_freshness")
    def source_freshness(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        """`dbt source freshness` of the selected sources, one check per source."""
        from runner.dbt_invoke import invoke_dbt

        selected = [check.asset_key for check in context.selected_asset_check_keys]
        selectors = []
        for key in selected:
            source = manifest["sources"][by_key[key]]
            selectors.append(f"source:{source['source_name']}.{source['name']}")
        result = invoke_dbt(settings, ["source", "freshness"], ["--select", *selectors])
        outcome = {
            item.node.unique_id: item for item in getattr(result.result, "results", None) or []
        }
        for key in selected:
            item = outcome.get(by_key[key])
            status = str(getattr(item, "status", "error")).lower().split(".")[-1]
            age = getattr(item, "age", None)
            yield AssetCheckResult(
                asset_key=key,
                check_name="freshness",
                passed=status == "pass",
                severity=AssetCheckSeverity.WARN if status == "warn" else AssetCheckSeverity.ERROR,
                metadata={
                    "status": status,
                    "age_hours": round(age / 3600, 1) if age is not None else -1.0,
                    "max_loaded_at": str(getattr(item, "max_loaded_at", "never loaded")),
                },
            )

    messaging_only = AssetSelection.assets(messaging)
    full_build = define_asset_job(
        "full_build",
        selection=(
            AssetSelection.all() - AssetSelection.assets(*raw_assets.values()) - messaging_only
        )
        | AssetSelection.checks(source_freshness),
        description="Every dbt model, seed, snapshot and test, attribution, and the "
        "freshness of every source.",
    )
    message_cycle = define_asset_job(
        "message_cycle",
        selection=messaging_only.downstream(),
        description="`runner message`, then the marts of the outbox.",
    )
    landing_jobs = {
        name: define_asset_job(
            f"load_{name.replace('-', '_')}",
            # not the messaging cycle (it reads the marts, but on its own schedule), nor
            # the marts of the outbox, which change only when it runs
            selection=AssetSelection.assets(asset).downstream() - messaging_only.downstream(),
            description=f"{asset.op.name}: land the files, then build what depends on them.",
        )
        for name, asset in raw_assets.items()
    }

    def landing_sensor(command: LoadCommand) -> Any:
        job = landing_jobs[command.name]
        subfolder = folder / command.name

        @sensor(
            name=f"landing_{command.name.replace('-', '_')}",
            job=job,
            minimum_interval_seconds=30,
            default_status=DefaultSensorStatus.RUNNING,
            description=f"A run of {job.name} per new file in {subfolder}.",
        )
        def watch(context: SensorEvaluationContext) -> SensorResult | SkipReason:
            subfolder.mkdir(parents=True, exist_ok=True)
            arrivals = landing.waiting(subfolder, time.time(), landing.settle_seconds())
            new, cursor = landing.next_cursor(context.cursor, arrivals)
            requests_ = [
                RunRequest(
                    run_key=f"{command.name}:{arrival.key}",
                    run_config={
                        "ops": {_op_name(command): {"config": {"files": [arrival.path.name]}}}
                    },
                    tags={"landing_file": str(arrival.path)},
                )
                for arrival in new
            ]
            if not requests_ and cursor == (context.cursor or "[]"):
                return SkipReason(f"No new file in {subfolder}.")
            return SensorResult(run_requests=requests_, cursor=cursor)

        return watch

    a_mart = next(key for key in dbt_models.keys if key.path[-1] == "customer_ltv")

    @sensor(
        name="first_full_build",
        job=full_build,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="One full build when this Dagster instance has never built the marts: "
        "the landing runs build only what depends on their source, and need the rest to "
        "exist.",
    )
    def first_full_build(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        if context.instance.get_latest_materialization_event(a_mart) is not None:
            return SkipReason(f"{a_mart.to_user_string()} has been built before.")
        # the run key makes it one request for the instance, however often it ticks
        # (and first in the queue: the landing runs of files already waiting need it)
        return RunRequest(run_key="first-full-build", tags={"dagster/priority": "10"})

    weeks = int(project_var(settings.project_dir, "engagement_window_weeks"))
    hour = build_hour()

    @schedule(
        name="daily_full_build",
        job=full_build,
        cron_schedule=f"0 {hour} * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"The full build every day at {hour:02d}:00 UTC ({BUILD_HOUR_VARIABLE}), "
        "evaluating the marts at the run's day.",
    )
    def daily_full_build(context: ScheduleEvaluationContext) -> RunRequest:
        day = context.scheduled_execution_time.date().isoformat()
        op_config = {"config": {"as_of_date": day}}
        return RunRequest(
            run_key=day,
            run_config={"ops": {"dbt_models": op_config, "dbt_after_runner": op_config}},
            tags={"as_of_date": day},
        )

    @schedule(
        name="messaging_cycle",
        job=message_cycle,
        cron_schedule=f"30 {hour} * * {MESSAGE_WEEKDAY}",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"The messaging cycle every {weeks} weeks (engagement_window_weeks), "
        "on Monday after the daily build.",
    )
    def messaging_cycle(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        day = context.scheduled_execution_time.date()
        if not is_cycle_week(day, weeks):
            return SkipReason(f"{day} does not start a {weeks}-week messaging cycle.")
        return RunRequest(run_key=day.isoformat(), tags={"cycle_end_date": day.isoformat()})

    @run_failure_sensor(name="alert_on_failure", default_status=DefaultSensorStatus.RUNNING)
    def alert_on_failure(context: RunFailureSensorContext) -> None:
        """Log the failing steps and their errors; post them to ALERT_WEBHOOK_URL."""
        steps = [
            {
                "step": event.step_key,
                "error": event.step_failure_data.error.message.strip()
                if event.step_failure_data.error
                else "unknown error",
            }
            for event in context.get_step_failure_events()
        ]
        payload = {
            "run_id": context.dagster_run.run_id,
            "job": context.dagster_run.job_name,
            "message": context.failure_event.message,
            "steps": steps,
        }
        for step in steps:
            context.log.error(f"Run {payload['run_id']} failed at {step['step']}: {step['error']}")
        url = os.environ.get(WEBHOOK_VARIABLE)
        if url:
            post_alert(url, payload)
        else:
            context.log.warning(f"{WEBHOOK_VARIABLE} is not set: the failure is only logged.")

    return Definitions(
        assets=[dbt_models, dbt_after_runner, attribution, messaging, *raw_assets.values()],
        asset_checks=[source_freshness],
        jobs=[full_build, message_cycle, *landing_jobs.values()],
        schedules=[daily_full_build, messaging_cycle],
        sensors=[
            first_full_build,
            *(landing_sensor(c) for c in LOAD_COMMANDS),
            alert_on_failure,
        ],
        resources={
            "dbt": DbtCliResource(
                project_dir=project,
                profiles_dir=str(settings.profiles_dir),
                target=settings.target,
                dbt_executable=str(Path(sys.executable).parent / "dbt"),
            )
        },
        executor=in_process_executor,
    )
