"""The `runner` command line. Commands are thin: they parse options, call the plain
functions of the runner's modules, and turn expected failures into a message and a
non-zero exit."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from runner import __version__
from runner.config import Settings, load_settings
from runner.errors import Interrupted, RunnerError
from runner.reports import render
from runner.sources import MARKETING, RAW_SOURCES, STORE_CUSTOMERS, Loader

if TYPE_CHECKING:
    from devtools.ihc_emulator import EmulatorServer
    from runner.warehouse import Warehouse

FILE = click.Path(exists=True, dir_okay=False, resolve_path=True, path_type=Path)


def warehouse_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--target, --project-dir and --profiles-dir, resolved into `settings`."""

    @click.option(
        "--target",
        "-t",
        default=None,
        help="dbt target to use (default: the profile's default target).",
    )
    @click.option(
        "--project-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="DBT_PROJECT_DIR",
        help="The dbt project folder (default: found from the working directory).",
    )
    @click.option(
        "--profiles-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="DBT_PROFILES_DIR",
        help="Folder with profiles.yml (default: as dbt: the project folder, then ~/.dbt).",
    )
    @functools.wraps(command)
    def wrapper(
        target: str | None, project_dir: Path | None, profiles_dir: Path | None, **kw: Any
    ) -> Any:
        settings = load_settings(target=target, project_dir=project_dir, profiles_dir=profiles_dir)
        return command(settings=settings, **kw)

    return wrapper


class InterruptedCommand(click.ClickException):
    """An Interrupted as click shows it: its one line alone on stderr, exit 130."""

    exit_code = Interrupted.exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)


def click_error(error: RunnerError) -> click.ClickException:
    """A RunnerError as click shows it: `Error: <message>` on stderr, exit 1; an
    Interrupted as its one line, exit 130."""
    if isinstance(error, Interrupted):
        return InterruptedCommand(error.message)
    return click.ClickException(error.message)


class RunnerGroup(click.Group):
    """The runner's commands. The only place where the runner's own exceptions
    (runner.errors) become click errors. A Ctrl-C (KeyboardInterrupt) that no command
    turned into its own Interrupted message becomes a general one: one line, exit 130,
    no traceback (click itself would print "Aborted!" and exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click_error(
                Interrupted(
                    "stopped before it finished; what it had not committed was rolled back. "
                    "Run the same command again."
                )
            ) from None
        except RunnerError as exc:
            raise click_error(exc) from None


@contextmanager
def on_interrupt(outcome: str) -> Iterator[None]:
    """Turn a Ctrl-C in this block (or command, as a decorator) into Interrupted(outcome):
    what the interruption left and what to do."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(outcome) from None


@click.group(cls=RunnerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Load raw files into the customer_analytics warehouse, build it with dbt, and
    query its marts. Reads the same dbt profile and target as dbt."""


@cli.command(context_settings={"ignore_unknown_options": True})
@warehouse_options
@click.option(
    "--freshness/--no-freshness",
    default=True,
    show_default=True,
    help="Check source freshness first and report stale sources (never blocks the build).",
)
@click.option(
    "--changed",
    is_flag=True,
    help="Build only the sources loaded since the last whole build and what is downstream "
    "of them, with their tests (everything when that cannot be scoped: the first build, a "
    "new as_of_date, an edited project, an unload). Needs the freshness check.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="RUNNER_DBT_LOG",
    show_envvar=True,
    help="Append dbt's per-node lines to this file and show one progress line and a "
    "summary instead (make demo: .tmp/demo-build.log).",
)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
@on_interrupt(
    "the dbt build stopped before it finished. dbt replaces each model, snapshot and seed in "
    "one transaction: those it finished are new, the others as they were, none half-written. "
    "Run `runner build` again to bring them all up to date."
)
def build(
    settings: Settings,
    freshness: bool,
    changed: bool,
    log_file: Path | None,
    dbt_args: tuple[str, ...],
) -> None:
    """Run `dbt source freshness` (reporting stale sources), then `dbt build` (seeds,
    models, snapshots, tests) on the target.

    Anything after `--` goes to dbt, e.g. `runner build -- --select customer_ltv+`.
    The marts are evaluated at the var as_of_date when given (`-- --vars '{as_of_date:
    2017-04-30}'`, remembered by the warehouse for later builds; `today` forgets it),
    else at the remembered date, else today: the first line says which.

    With --changed, only the sources with a new load since the last whole build (one
    that built every model, recorded in raw.builds) are built, with everything
    downstream of them and their tests: a day's new files build in a fraction of the
    time, to the same result as a whole build.
    """
    from runner import builds
    from runner.as_of import build_as_of
    from runner.dbt_invoke import parse_for_build, run_dbt, source_freshness
    from runner.warehouse import connect

    if changed and not freshness:
        raise RunnerError(
            "--changed finds the new loads with the freshness check: drop --no-freshness."
        )
    if changed and builds.selecting_options(dbt_args):
        given = ", ".join(builds.selecting_options(dbt_args))
        raise RunnerError(
            f"--changed chooses the nodes to build itself; it cannot be given {given}. "
            "Drop them, or build your selection without --changed."
        )
    started_at = builds.utc_now()
    with connect(settings) as warehouse:
        warehouse.ensure_raw_tables()
        _land_intake(warehouse, settings, warn=True)
        as_of = build_as_of(warehouse, settings, dbt_args)
        last = builds.last_whole_build(warehouse, settings) if changed else None
        unloaded = last is not None and builds.unloaded_since(warehouse, settings, last.started_at)
    click.echo(f"Evaluating the marts at {as_of.describe()}.", err=True)
    # one parse for the freshness check and the build (None: the build parses itself)
    parsed = parse_for_build(settings, dbt_args, log_file=log_file) if freshness else None
    newest = None
    if freshness:
        checked = source_freshness(settings, dbt_args, parsed=parsed)
        newest = checked.newest
        if checked.problems:
            lines = "\n  ".join(checked.problems)
            click.echo(f"Stale sources (dbt source freshness):\n  {lines}", err=True)
        else:
            click.echo("Every source with a freshness threshold is fresh.", err=True)
    digest = builds.project_digest(settings.project_dir, dbt_args)
    select: list[str] = []
    if changed:
        assert newest is not None
        manifest = parsed.manifest if parsed else None
        plan = builds.changed_plan(settings, manifest, last, as_of.day, digest, newest, unloaded)
        click.echo(f"--changed: {plan.reason}.", err=True)
        if plan.nothing:
            if parsed is not None:
                parsed.discard()
            return
        if plan.select:  # the unit tests check SQL, which is the recorded build's
            select = ["--select", plan.select, "--exclude-resource-type", "unit_test"]
    click.echo(f"Building target {settings.target} ({settings.adapter_type})...", err=True)
    if not run_dbt(settings, ["build"], [*dbt_args, *select], log_file=log_file, parsed=parsed):
        where = (
            f"the failing nodes above and dbt's output in {log_file}"
            if log_file
            else "dbt's output above"
        )
        raise RunnerError(f"dbt build failed: see {where}.")
    if newest is not None and builds.is_whole(dbt_args):
        with connect(settings) as warehouse:
            builds.record_whole_build(
                warehouse,
                settings,
                started_at,
                as_of.day,
                digest,
                newest,
                select[1] if select else builds.EVERYTHING,
            )


@cli.group()
def load() -> None:
    """Land raw files in the `raw` schema (lossless and idempotent: a file already
    landed is skipped)."""


def fault_rate_option(name: str, help: str) -> Callable[..., Any]:
    """An emulator fault rate: the share of requests (0 to 1) that get the fault."""
    return click.option(name, type=click.FloatRange(0, 1), default=0.0, metavar="RATE", help=help)


def _load_command(source_table: str, files: tuple[Path, ...], settings: Settings) -> None:
    from runner.loading import load_file
    from runner.warehouse import connect

    with connect(settings) as warehouse:
        for number, path in enumerate(files):
            with on_interrupt(_load_interrupted(path, files[:number])):
                result = load_file(warehouse, source_table, path)
            click.echo(result.summary())


def _load_interrupted(path: Path, landed: tuple[Path, ...] = ()) -> str:
    """What an interrupted load leaves: a file lands in one transaction, or not at all."""
    before = f" (the {len(landed)} file(s) before it are landed)" if landed else ""
    return (
        f"nothing of {path} landed{before}; run the same command again (files already "
        "landed are skipped)."
    )


# command: (raw table, what the command's help says), for every source whose files land as
# they are: from the registry (runner/sources.py).
FILE_SOURCES = {
    source.command.name: (source.table, source.command.help)
    for source in RAW_SOURCES
    if source.command.loader is Loader.FILES
}


def _file_load_command(name: str, table: str, help: str) -> None:
    """Register `runner load NAME FILE...` for a source whose files land as they are."""

    @load.command(name, help=help)
    @warehouse_options
    @click.argument("files", nargs=-1, required=True, type=FILE)
    def command(settings: Settings, files: tuple[Path, ...]) -> None:
        _load_command(table, files, settings)


for _name, (_table, _help) in FILE_SOURCES.items():
    _file_load_command(_name, _table, _help)


def _land_intake(warehouse: Warehouse, settings: Settings, warn: bool = False) -> int:
    """Land the app events `runner serve` accepted (runner.intake); how many landed. With
    `warn`, a failure is a warning (the build goes on: the events wait in the spool)."""
    from runner.intake import land_intake

    try:
        with on_interrupt(
            "the app events being landed were rolled back; they wait in the intake spool. "
            "Run the same command again."
        ):
            landings = land_intake(warehouse, settings)
    except RunnerError as exc:
        if not warn or isinstance(exc, Interrupted):
            raise
        click.echo(f"Warning: the app events received over HTTP were not landed: {exc}", err=True)
        return 0
    for landing in landings:
        click.echo(landing.summary(), err=warn)
    return sum(landing.landed for landing in landings)


INTAKE_COMMAND = "app-intake"


@load.command(
    INTAKE_COMMAND,
    help="Land the app sessions and purchases that `runner serve` accepted over HTTP "
    "(POST /api/v1/app/sessions and /api/v1/app/purchases) in raw.app_sessions and "
    "raw.app_purchases. `runner build` does it first by itself.",
)
@warehouse_options
def load_app_intake(settings: Settings) -> None:
    from runner.warehouse import connect

    with connect(settings) as warehouse:
        if not _land_intake(warehouse, settings):
            click.echo(f"No app events waiting in the intake spool {settings.intake_spool}.")


@load.command(STORE_CUSTOMERS.name, help=STORE_CUSTOMERS.help)
@warehouse_options
@click.argument("file", type=FILE)
@click.option(
    "--extract-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The date of the full extract (YYYY-MM-DD; default: the YYYY-MM-DD in the file "
    "name, else refused). Extracts must be loaded in date order.",
)
@click.option(
    "--snapshot/--no-snapshot",
    default=True,
    show_default=True,
    help="Historize the extract right away (dbt snapshot), so every extract gets its version.",
)
def load_store_customers(
    settings: Settings, file: Path, extract_date: datetime | None, snapshot: bool
) -> None:
    from runner.dbt_invoke import run_dbt
    from runner.loading import extract_date_of
    from runner.loading import load_store_customers as land
    from runner.warehouse import connect

    day, warning = extract_date_of(file, extract_date.date() if extract_date else None)
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    with connect(settings) as warehouse, on_interrupt(_load_interrupted(file)):
        result = land(warehouse, file, day)
    click.echo(result.summary())
    if snapshot and not result.skipped and settings.adapter_type == "spark":
        click.echo(
            "No snapshot on Spark (none without Delta Lake): the next `runner build` "
            "rebuilds the store customer history from every landed extract "
            "(int_store_customers_versioned).",
            err=True,
        )
    elif snapshot and not result.skipped:
        click.echo("Historizing the extract (dbt snapshot of store customers)...", err=True)
        selection = ["--select", "+store_customers_snapshot", "--indirect-selection", "cautious"]
        with on_interrupt(
            "the extract landed, but its snapshot stopped before it finished. Run "
            "`runner build` before loading the next extract."
        ):
            succeeded = run_dbt(settings, ["build"], selection)
        if not succeeded:
            raise RunnerError(
                "The extract landed, but its snapshot failed: see dbt's output above. "
                "Fix the cause and run `runner build` before loading the next extract."
            )


@load.command(MARKETING.name, help=MARKETING.help)
@warehouse_options
@click.argument("path", type=click.Path(exists=True, resolve_path=True, path_type=Path))
def load_marketing(settings: Settings, path: Path) -> None:
    from runner.loading import describe_marketing_sqlite
    from runner.loading import load_marketing as land
    from runner.warehouse import connect

    interrupted = on_interrupt(
        f"the marketing table being landed from {path} was rolled back (each table is one "
        "load); run the same command again (tables already landed are skipped)."
    )
    with connect(settings) as warehouse, interrupted:
        results = land(warehouse, path)
    if path.is_file():
        click.echo(describe_marketing_sqlite(path))
    for result in results:
        click.echo(result.summary())


@cli.command()
@warehouse_options
@click.argument("load_id")
def unload(settings: Settings, load_id: str) -> None:
    """Take a load back: delete its raw rows and its line in the raw table loads (one
    transaction).
    The next build rebuilds the incremental models in full once, so the marts are those
    of a warehouse that never had it. LOAD_ID is what `runner load` printed."""
    from runner.loading import unload as take_back
    from runner.warehouse import connect

    interrupted = on_interrupt(
        f"nothing of load {load_id} was removed (one transaction); run the same command again."
    )
    with connect(settings) as warehouse, interrupted:
        click.echo(take_back(warehouse, load_id).summary())


@cli.command("top-ltv")
@warehouse_options
@click.argument("n", type=click.IntRange(min=1))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
def top_ltv(settings: Settings, n: int, fmt: str) -> None:
    """The N customers with the highest lifetime value, with the figures behind it."""
    from runner.reports import render
    from runner.reports import top_ltv as query_top_ltv
    from runner.warehouse import connect

    with connect(settings, read_only=True) as warehouse:
        columns, rows = query_top_ltv(warehouse, settings, n)
    click.echo(render(columns, rows, fmt))


@cli.command()
@warehouse_options
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
def summary(settings: Settings, top: int) -> None:
    """What the marts hold: rows landed, valid and quarantined per source; top customers
    by lifetime value and year-to-date spend; recency; messaging buckets; and one CRM
    customer's interactions as the API serves them."""
    from runner.reports import summary as query_summary
    from runner.warehouse import connect

    with connect(settings, read_only=True) as warehouse:
        click.echo(query_summary(warehouse, settings, top).describe())


@cli.command()
@warehouse_options
@click.argument("customer_id", type=click.INT)
@click.option("--channel", default=None, help="Only this channel (exact match, e.g. Email).")
@click.option("--topic", default=None, help="Only interactions about this topic (exact match).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    metavar="YYYY-MM-DD",
    help="Only interactions on or after this day.",
)
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    metavar="YYYY-MM-DD",
    help="Only interactions on or before this day.",
)
def interactions(
    settings: Settings,
    customer_id: int,
    channel: str | None,
    topic: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """A CRM customer's interactions per channel, as JSON (every channel, zero when none;
    only the one of --channel)."""
    from runner.interactions import customer_interactions
    from runner.warehouse import connect

    with connect(settings, read_only=True) as warehouse:
        result = customer_interactions(
            warehouse,
            settings,
            customer_id,
            topic=topic,
            since=since.date() if since else None,
            until=until.date() if until else None,
            channel=channel,
        )
    click.echo(json.dumps(result, indent=2))


@cli.command()
@warehouse_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port."
)
@click.option(
    "--keys-file",
    type=FILE,
    default=None,
    help="File of the sha256 hashes of the accepted API keys, one a line (`runner "
    "hash-key`); with RUNNER_API_KEYS, both sets are accepted.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    default=False,
    help="Serve without API keys: anyone who can reach the port reads the marts.",
)
def serve(settings: Settings, host: str, port: int, keys_file: Path | None, no_auth: bool) -> None:
    """Serve the HTTP API: GET /api/v1/interactions/CUSTOMER_ID, /api/v1/interactions,
    /api/v1/customers, /api/v1/channels, /health; docs at /docs; and the app events'
    intake: POST /api/v1/app/sessions and /api/v1/app/purchases.

    Every route but /health needs `Authorization: Bearer <key>`: the keys are those of
    the environment variable RUNNER_API_KEYS (comma-separated) and those whose sha256
    hashes --keys-file lists. Without any key it refuses to start, unless --no-auth.

    Builds run while it serves. On DuckDB it reads the copy of the marts that each
    successful `runner build` publishes, never the warehouse file (one writer at a
    time), and answers from the previous build until the next one is done; it publishes
    a copy as it starts when there is none or the warehouse is newer (a plain `dbt
    build`). On PostgreSQL each request opens its own short connection. App events are
    kept in the intake spool (never the warehouse) and land at the next `runner build`
    or `runner load app-intake`.
    """
    import os

    import uvicorn

    from runner.api import create_app
    from runner.auth import KEYS_ENV, configured_keys
    from runner.serving import publish_before_serving

    keys = configured_keys(os.environ, keys_file)
    if no_auth and keys is not None:
        raise RunnerError(
            f"--no-auth serves without keys, but keys are given ({KEYS_ENV} or "
            "--keys-file). Drop --no-auth to require them, or unset the keys."
        )
    if not no_auth and keys is None:
        raise RunnerError(
            "No API key is configured, and the API needs one on every route but /health. "
            f"Set {KEYS_ENV}=KEY1,KEY2 or pass --keys-file FILE (the keys' sha256 hashes, "
            "one a line: `runner hash-key`), or pass --no-auth to serve without keys."
        )
    message = publish_before_serving(settings)
    if message:
        click.echo(message, err=True)
    if keys is None:
        click.echo(
            f"Warning: --no-auth: the API on {host}:{port} answers anyone who reaches it, "
            "without a key.",
            err=True,
        )
    else:
        click.echo(f"The API accepts {len(keys)} key(s) (Authorization: Bearer).", err=True)
    uvicorn.run(create_app(settings, keys), host=host, port=port, log_level="info")


@cli.command("hash-key")
def hash_key_command() -> None:
    """Read an API key on standard input and print its sha256, a line of a keys file
    (`runner serve --keys-file`). E.g. `runner hash-key < key.txt >> api-keys.txt`."""
    import sys

    from runner.auth import KEY_TEXT, hash_key

    key = sys.stdin.readline().strip()
    if not KEY_TEXT.fullmatch(key):
        raise RunnerError(
            "Give the key on standard input, one line of printable ASCII without spaces "
            "(e.g. `runner hash-key < key.txt`)."
        )
    click.echo(hash_key(key))


@cli.command()
@warehouse_options
def publish(settings: Settings) -> None:
    """DuckDB: publish the marts that `runner serve` reads, from the warehouse as it is.

    `runner build` does this after every successful build; run it after a plain `dbt
    build`. A running server answers from the new copy at its next request.
    """
    from runner.serving import publish as publish_copy

    path = publish_copy(settings)
    if path is None:
        click.echo(f"Target {settings.target} is PostgreSQL: the API reads the marts directly.")
    else:
        click.echo(f"Published the marts the API reads to {path}.")


@cli.command("ihc-emulator", context_settings={"allow_interspersed_args": False})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    envvar="EMULATOR_PORT",
    show_envvar=True,
    default=None,
    help="Port (0: any free port)  [default: 8765; with a COMMAND, any free port]",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append the request log to this file instead of stderr.",
)
@click.option(
    "--latency-ms",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Sleep this long in every request (requests in parallel overlap).",
)
@click.option(
    "--max-journeys",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Most journeys (conversion_ids) per request; more: 400.",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(min=1),
    default=3000,
    show_default=True,
    help="Most sessions per request; more: 400.",
)
@click.option(
    "--api-key",
    envvar="IHC_API_KEY",
    show_envvar=True,
    default="emulator-key",
    show_default=True,
    help="The key clients must send in x-api-key. Prefer the variable: an option shows in "
    "the process list.",
)
@click.option(
    "--conv-type-id",
    "conv_type_ids",
    multiple=True,
    metavar="ID",
    help="An accepted conv_type_id (repeatable; default: default and coding_challenge).",
)
@fault_rate_option("--fault-429", "Share of requests answered 429 with Retry-After.")
@click.option(
    "--retry-after",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    metavar="S",
    help="The Retry-After seconds of 429 answers.",
)
@fault_rate_option("--fault-5xx", "Share of requests answered 500, 502 or 503.")
@fault_rate_option("--fault-slow", "Share of requests answered only after --slow-ms more.")
@click.option(
    "--slow-ms",
    type=click.IntRange(min=0),
    default=5000,
    show_default=True,
    help="The extra delay of slow answers.",
)
@fault_rate_option(
    "--fault-drop", "Share of requests whose connection is closed without an answer."
)
@fault_rate_option(
    "--fault-partial", "Share of requests answered 206 with a third of the journeys failed."
)
@fault_rate_option("--fault-wrong-sum", "Share of requests where one journey's ihc sums to 0.8.")
@click.option(
    "--fault-seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the fault draws: same seed and request order, same faults.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ihc_emulator(
    host: str,
    port: int | None,
    latency_ms: int,
    max_journeys: int,
    max_sessions: int,
    api_key: str,
    conv_type_ids: tuple[str, ...],
    fault_429: float,
    retry_after: int,
    fault_5xx: float,
    fault_slow: float,
    slow_ms: int,
    fault_drop: float,
    fault_partial: float,
    fault_wrong_sum: float,
    fault_seed: int,
    log_file: Path | None,
    command: tuple[str, ...],
) -> None:
    """Serve a local emulator of the IHC attribution API (POST /v1/compute_ihc), for
    tests and benchmarks without the real service. Runs until Ctrl-C, or, given a
    COMMAND (after `--`), only while COMMAND runs: it first checks that GET /health at
    its URL names this very emulator, then runs COMMAND with IHC_API_URL and
    IHC_API_KEY set to its own URL and key, and exits with COMMAND's exit code. E.g.
    `runner ihc-emulator -- runner attribute` (as `make demo` does).

    It checks the key (401 without x-api-key, 403 with a wrong one), the conv_type_id,
    the body and the limits (400) like the real service, but scores with a simple,
    deterministic model, not the trained one: per journey, sessions in timestamp order,
    the initializer phase goes to the first session, the closer phase to the converting
    one (conversion=1), the holder phase equally to the holder_engagement=1 sessions
    strictly between first and last (or to all sessions when there is none), and
    ihc = 0.3 initializer + 0.4 holder + 0.3 closer. Like the real service it does not
    refuse a journey without exactly one conversion=1 session: its ihc then does not sum
    to 1 (0.7 without one).

    Faults, drawn per request (rates add up to at most 1, reproducible with
    --fault-seed): 429 with Retry-After, 500/502/503, slow answers, dropped connections,
    206 with a third of the journeys in partialFailureErrors, and one journey whose ihc
    sums to 0.8. Each request logs its status, journeys, sessions and time.
    GET /health answers {"service": "ihc-emulator", "instance": "<random token>"}.
    """
    import logging

    from devtools.ihc_emulator import API_KEY_ENV, EmulatorConfig, FaultPlan, make_server

    try:
        faults = FaultPlan(
            rate_429=fault_429,
            rate_5xx=fault_5xx,
            rate_slow=fault_slow,
            rate_drop=fault_drop,
            rate_partial=fault_partial,
            rate_wrong_sum=fault_wrong_sum,
            seed=fault_seed,
            retry_after_s=retry_after,
            slow_ms=slow_ms,
        )
        extra = {"conv_type_ids": frozenset(conv_type_ids)} if conv_type_ids else {}
        config = EmulatorConfig(
            api_key=api_key,
            latency_ms=latency_ms,
            max_journeys=max_journeys,
            max_sessions=max_sessions,
            faults=faults,
            **extra,
        )
    except ValueError as exc:
        raise RunnerError(str(exc)) from None
    ctx = click.get_current_context()
    if port is None:
        port = 0 if command else 8765
    try:
        server = make_server(config, host, port)
    except OSError as exc:
        raise RunnerError(_listen_error(host, port, exc, ctx)) from None

    source = ctx.get_parameter_source("api_key")
    key_sources: dict[click.core.ParameterSource | None, str] = {
        click.core.ParameterSource.COMMANDLINE: "the --api-key option",
        click.core.ParameterSource.ENVIRONMENT: f"${API_KEY_ENV}",
    }
    key_from = key_sources.get(
        source, f"the built-in default (see --help; set ${API_KEY_ENV} to choose one)"
    )
    kinds = ", ".join(sorted(config.conv_type_ids))
    click.echo(f"IHC emulator (not the real model) listening on {server.url}", err=True)
    click.echo(f"  POST {server.url}/v1/compute_ihc?conv_type_id=ID (ID: {kinds})", err=True)
    click.echo(f"  API key (x-api-key): from {key_from}", err=True)
    if faults.active():
        rates = ", ".join(f"{kind} {rate:g}" for kind, rate in faults.rates().items() if rate)
        click.echo(f"  Faults: {rates} (seed {fault_seed})", err=True)
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    request_log = logging.getLogger("devtools.ihc_emulator")
    request_log.setLevel(logging.INFO)
    request_log.addHandler(handler)
    try:
        if command:
            ctx.exit(_serve_beside(server, command, api_key))
        click.echo("  Ctrl-C to stop.", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.", err=True)
    finally:
        server.server_close()
        request_log.removeHandler(handler)
        handler.close()


def _serve_beside(server: EmulatorServer, command: tuple[str, ...], api_key: str) -> int:
    """Serve in a thread while `command` runs against this emulator, once GET /health at
    its URL has named this very server; the command's exit code."""
    import os
    import threading

    from devtools.ihc_emulator import API_KEY_ENV, NotTheEmulator, check_identity

    thread = threading.Thread(target=server.serve_forever, name="ihc-emulator", daemon=True)
    thread.start()
    try:
        try:
            check_identity(server.url, server.instance)
        except NotTheEmulator as exc:
            raise RunnerError(
                f"The emulator listens on {server.url}, but {exc}. Nothing was run: choose "
                "another port (--port, or EMULATOR_PORT)."
            ) from None
        return _run_beside(command, {**os.environ, "IHC_API_URL": server.url, API_KEY_ENV: api_key})
    finally:
        server.shutdown()


def _run_beside(command: tuple[str, ...], env: dict[str, str]) -> int:
    """Run an emulator's COMMAND to its end; its exit status (128 + N when signal N ended
    it). A SIGTERM or SIGHUP the runner receives (a supervisor's stop, or make's when make
    is stopped) is passed on to COMMAND, which then ends as it would by itself (Dagster
    stops its daemon and web server), not left running without its emulator. Ctrl-C: from
    the terminal it reaches COMMAND too, and the runner waits for COMMAND's end; sent to
    the runner alone, it is passed on."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    try:
        child = subprocess.Popen(list(command), env=env)
    except OSError as exc:
        raise RunnerError(f"Cannot run {command[0]}: {exc.strerror or exc}.") from None

    def forward(number: int, frame: object) -> None:
        child.send_signal(number)

    def from_terminal() -> bool:
        try:
            return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
        except (OSError, ValueError):
            return False

    passed_on = (signal.SIGTERM, signal.SIGHUP)
    main = threading.current_thread() is threading.main_thread()
    previous = {number: signal.signal(number, forward) for number in passed_on} if main else {}
    try:
        while True:
            try:
                returncode = child.wait()
                break
            except KeyboardInterrupt:
                if not from_terminal():
                    child.send_signal(signal.SIGINT)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return returncode if returncode >= 0 else 128 - returncode


@cli.command("sms-emulator", context_settings={"allow_interspersed_args": False})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="EMULATOR_PORT",
    help="Port (default 8766; with a COMMAND, any free port; env EMULATOR_PORT).",
)
@fault_rate_option("--fault-429", "Share of messages answered 429 with Retry-After.")
@fault_rate_option("--fault-5xx", "Share of messages answered 500 or 503.")
@fault_rate_option(
    "--fault-drop", "Share of messages delivered, then the connection closed without an answer."
)
@fault_rate_option("--fault-slow", "Share of messages answered only after --slow-ms more.")
@click.option("--slow-ms", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--fault-seed", type=int, default=0, show_default=True, help="Seed of the faults.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sms_emulator(
    host: str, port: int | None, fault_429: float, fault_5xx: float, fault_drop: float,
    fault_slow: float, slow_ms: int, fault_seed: int, command: tuple[str, ...],
) -> None:  # fmt: skip
    """Serve a local SMS gateway in the shape of Twilio's Messages API
    (devtools/sms_gateway_emulator.py), to try `runner message`'s twilio sender without
    an account. Runs until Ctrl-C, or, given a COMMAND (after `--`), only while COMMAND
    runs, with RUNNER_MESSAGE_SENDER=twilio and TWILIO_API_URL, TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN and TWILIO_FROM set for it, exiting with COMMAND's exit code:
    `runner sms-emulator -- runner message`. It honours I-Twilio-Idempotency-Token and
    logs nothing secret; its credentials are the emulator's own, not secrets.
    """
    import os
    import threading

    from devtools.sms_gateway_emulator import FaultPlan, GatewayConfig, GatewayServer

    if fault_429 + fault_5xx + fault_drop + fault_slow > 1:
        raise RunnerError("The fault rates add up to more than 1: lower them.")
    faults = FaultPlan(
        rate_429=fault_429, rate_5xx=fault_5xx, rate_drop=fault_drop, rate_slow=fault_slow,
        slow_ms=slow_ms, seed=fault_seed,
    )  # fmt: skip
    config = GatewayConfig(faults=faults)
    ctx = click.get_current_context()
    if port is None:
        port = 0 if command else 8766
    try:
        server = GatewayServer(config, (host, port))
    except OSError as exc:
        raise RunnerError(_listen_error(host, port, exc, ctx)) from None
    env = {
        "RUNNER_MESSAGE_SENDER": "twilio",
        "TWILIO_API_URL": server.url,
        "TWILIO_ACCOUNT_SID": config.account_sid,
        "TWILIO_AUTH_TOKEN": config.auth_token,
        "TWILIO_FROM": "+15005550006",
    }
    click.echo(
        f"SMS gateway emulator (Twilio Messages API shape) listening on {server.url}", err=True
    )
    click.echo("  " + " ".join(f"{name}={value}" for name, value in env.items()), err=True)
    try:
        if command:
            thread = threading.Thread(target=server.serve_forever, name="sms-emulator", daemon=True)
            thread.start()
            try:
                returncode = _run_beside(command, {**os.environ, **env})
            finally:
                server.shutdown()
                thread.join()
            delivered = len(server.stats.deliveries)
            click.echo(f"SMS gateway emulator: {delivered} messages delivered.", err=True)
            ctx.exit(returncode)
        click.echo("  Ctrl-C to stop.", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.", err=True)
    finally:
        server.server_close()


def _listen_error(host: str, port: int, exc: OSError, ctx: click.Context) -> str:
    """Why the emulator cannot listen, and what to do."""
    import errno

    if exc.errno != errno.EADDRINUSE:
        return f"Cannot listen on {host}:{port}: {exc.strerror or exc}."
    if ctx.get_parameter_source("port") == click.core.ParameterSource.ENVIRONMENT:
        return (
            f"Port {port} (from EMULATOR_PORT) is in use by another program; unset "
            "EMULATOR_PORT or choose a free one."
        )
    return (
        f"Port {port} on {host} is in use by another program; choose a free one with "
        "--port, or --port 0 for any free port."
    )


@cli.command()
@warehouse_options
@click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), help="Conversions from this day.")
@click.option("--end-date", type=click.DateTime(["%Y-%m-%d"]), help="Conversions before this day.")
@click.option(
    "--conv-type-id",
    envvar="IHC_CONV_TYPE_ID",
    required=True,
    help="The API's conversion type (env IHC_CONV_TYPE_ID).",
)
@click.option(
    "--api-url",
    envvar="IHC_API_URL",
    default="https://api.ihc-attribution.com",
    show_default=True,
    help="Base URL of the IHC API (env IHC_API_URL).",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel requests."
)
@click.option(
    "--max-journeys",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Journeys per request at most.",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(min=1),
    default=3000,
    show_default=True,
    help="Sessions per request at most; a longer journey is reported and not sent.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
    help="Seconds to wait for each answer.",
)  # fmt: skip
@click.option(
    "--max-attempts", type=click.IntRange(1, 20), default=6, show_default=True,
    help="Tries per request (retries with exponential backoff and jitter).",
)  # fmt: skip
@click.option(
    "--tolerance", type=click.FloatRange(min=0), default=1e-6, show_default=True,
    help="How far from 1 a conversion's ihc may sum.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Replace the results of conversions done before.")
@click.option(
    "--build/--no-build",
    default=True,
    show_default=True,
    help="Build what depends on the results after the run.",
)
@on_interrupt(
    "the answers received before it are written, each in one transaction with its checks; "
    "the run is logged as failed (the raw table attribution_runs). Run the same command again "
    "(without --force it sends only the conversions still without results)."
)
def attribute(
    settings: Settings,
    start_date: datetime | None,
    end_date: datetime | None,
    conv_type_id: str,
    api_url: str,
    workers: int,
    max_journeys: int,
    max_sessions: int,
    timeout: float,
    max_attempts: int,
    tolerance: float,
    force: bool,
    build: bool,
) -> None:
    """Attribute conversions with the IHC API and write the shares back as a source.

    Sends the journeys of conversions in [--start-date, --end-date) (both optional) to
    POST {api-url}/v1/compute_ihc, in parallel requests of whole journeys, retrying
    throttling and server trouble; checks every answer; writes results to the raw table
    attribution_customer_journey and what fails to attribution_rejects; logs the run in
    attribution_runs (all in the target's raw schema); then builds what depends on the
    results. The key comes only from the environment variable IHC_API_KEY.

    A conversion's earlier results are replaced only by a complete, checked new answer:
    a failed request or a rejected conversion keeps them as they were.

    \b
    Exit codes:
      0  every selected conversion got results (or none was selected)
      1  error: nothing more could be done (see the message)
      3  finished, but some conversions got no results (failed requests, rejected or
         too long): the summary counts them by reason; a rerun retries them
    """
    import os

    from runner.attribution import (
        EXIT_INCOMPLETE,
        RESULTS_SOURCE,
        AttributionOptions,
        run_attribution,
    )
    from runner.dbt_invoke import run_dbt
    from runner.progress import ProgressBar
    from runner.warehouse import connect

    api_key = os.environ.get("IHC_API_KEY", "")
    if not api_key:
        raise RunnerError(
            "Set the environment variable IHC_API_KEY to your IHC API key (it is never "
            "taken on the command line). For a local run, start `runner ihc-emulator` and "
            "point --api-url at it."
        )
    options = AttributionOptions(
        api_url=api_url,
        api_key=api_key,
        conv_type_id=conv_type_id,
        start_date=start_date.date() if start_date else None,
        end_date=end_date.date() if end_date else None,
        workers=workers,
        max_journeys=max_journeys,
        max_sessions=max_sessions,
        timeout_seconds=timeout,
        max_attempts=max_attempts,
        tolerance=tolerance,
        force=force,
    )
    with connect(settings) as warehouse, ProgressBar("Journeys") as progress:
        summary = run_attribution(warehouse, settings, options, progress)
    click.echo(summary.describe())
    if build:
        click.echo("Building what depends on the attribution results...", err=True)
        # What depends on the results, and what those models read (so their unit tests
        # and joins find every input, even where only part of the warehouse was built).
        selection = ["--select", f"@{RESULTS_SOURCE}", "--indirect-selection", "cautious"]
        with on_interrupt(
            "the attribution results are written, but the build of what depends on them "
            "stopped before it finished. Run `runner build` to finish it."
        ):
            succeeded = run_dbt(settings, ["build"], selection)
        if not succeeded:
            raise RunnerError("dbt build of the attribution results failed: see its output above.")
    if not summary.complete:
        retry = "Run the same command again to retry them"
        if "journey_too_long" in summary.reject_reasons:
            retry += " (journeys too long need a higher --max-sessions)"
        click.echo(
            f"Finished, but incomplete (exit {EXIT_INCOMPLETE}): {summary.without_results()}. "
            f"{retry}.",
            err=True,
        )
        click.get_current_context().exit(EXIT_INCOMPLETE)


@cli.command()
@warehouse_options
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The cycle's last day: refused unless customer_engagement was built for it "
    "(default: the date it was built for).",
)
@click.option("--dry-run", is_flag=True, help="Render and show the outbox; send and write nothing.")
@on_interrupt(
    "every message sent before it is recorded; one being sent may stay 'sending' in the "
    "outbox. Run the same command again: it sends only what was not sent, and resolves a "
    "'sending' message with its idempotency key, without a second delivery."
)
def message(settings: Settings, as_of: datetime | None, dry_run: bool) -> None:
    """Send the app messages of a cycle: one per customer in BOOST or REWARD.

    The cycle is the engagement_window_weeks window ending on the date the mart
    customer_engagement was built for. Texts come from messages/<BUCKET>.txt; the outbox
    is the raw table app_messages; the sender is RUNNER_MESSAGE_SENDER (file, the default,
    or twilio with TWILIO_* from the environment). A rerun sends only what was not sent.

    \b
    Exit codes:
      0  every message of the cycle is delivered (queued or sent)
      1  error: nothing more could be done (see the message)
      3  finished, but some messages failed (the summary says why); a rerun retries them
    """
    from runner.config import MessagingSettings
    from runner.messaging import EXIT_INCOMPLETE, run_messaging
    from runner.progress import ProgressBar
    from runner.warehouse import connect

    messaging = MessagingSettings.from_environment(settings.project_dir)
    day = as_of.date() if as_of else None
    with connect(settings, read_only=dry_run) as warehouse, ProgressBar("Messages") as progress:
        summary = run_messaging(warehouse, settings, messaging, day, dry_run, progress=progress)
    click.echo(summary.describe())
    if not dry_run:
        from runner.dbt_invoke import run_dbt
        from runner.messaging import OUTBOX_SOURCE

        click.echo("Building the message marts from the outbox...", err=True)
        selection = ["--select", f"{OUTBOX_SOURCE}+", "--indirect-selection", "cautious"]
        with on_interrupt(
            "the messages are sent and recorded in the outbox, but the build of the message "
            "marts stopped before it finished. Run `runner build` to finish it."
        ):
            succeeded = run_dbt(settings, ["build"], selection)
        if not succeeded:
            raise RunnerError(
                "The messages are sent and recorded in the outbox, but the build of the "
                "message marts failed: see dbt's output above, fix it and run `runner build`."
            )
    if not dry_run and not summary.complete:
        click.echo(
            f"Finished, but {summary.failed} messages failed (exit {EXIT_INCOMPLETE}). Run the "
            "same command again to retry them (after loading the missing phone numbers with "
            "`runner load app-contacts FILE`, for those that had none).",
            err=True,
        )
        click.get_current_context().exit(EXIT_INCOMPLETE)


@cli.group()
def export() -> None:
    """Write marts to files."""


@export.command("channel-reporting")
@warehouse_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    required=True,
    help="The CSV file to write; - for standard output.",
)
@click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), help="From this day.")
@click.option("--end-date", type=click.DateTime(["%Y-%m-%d"]), help="Before this day.")
def export_channel_reporting(
    settings: Settings, out: Path, start_date: datetime | None, end_date: datetime | None
) -> None:
    """The mart channel_reporting as CSV with a header row, days in [start, end)."""
    from runner.reports import channel_reporting, check_day_range
    from runner.warehouse import connect

    start, end = (day.date() if day else None for day in (start_date, end_date))
    check_day_range(start, end)
    with connect(settings, read_only=True) as warehouse:
        columns, rows = channel_reporting(warehouse, settings, start, end)
    text = render(columns, rows, "csv") + "\n"
    if str(out) == "-":
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    click.echo(
        f"{'standard output' if str(out) == '-' else out}: {len(rows)} channel-days", err=True
    )


@cli.command("setup-postgres")
@warehouse_options
@click.option("--bi-role", default="bi_reader", show_default=True, help="The BI tools' role.")
@click.option(
    "--login/--no-login",
    default=False,
    show_default=True,
    help="Let the role log in itself (password from BI_PASSWORD, if set); otherwise grant "
    "it to your BI tools' users.",
)
def setup_postgres(settings: Settings, bi_role: str, login: bool) -> None:
    """Create the BI role on the PostgreSQL target if missing (run as a role with
    CREATEROLE). Builds then grant it SELECT on every mart and nothing else."""
    import os

    from runner.warehouse import PostgresWarehouse, connect, setup_bi_role

    with connect(settings) as warehouse:
        if not isinstance(warehouse, PostgresWarehouse):
            raise RunnerError(
                f"Target {settings.target} is not PostgreSQL: DuckDB has no roles to set up."
            )
        created = setup_bi_role(warehouse, bi_role, login, os.environ.get("BI_PASSWORD"))
    state = "created" if created else "already exists"
    click.echo(
        f"Role {bi_role} {state}. `runner build --target {settings.target}` grants it SELECT "
        f"on the marts (a role other than bi_reader: --vars '{{bi_role: {bi_role}}}')."
    )


@cli.command()
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=None,
    help="How many customers (required, but with --append, which reads it from generate.json).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Random seed: same seed, same files (required, but with --append).",
)
@click.option(
    "--start-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    default=None,
    help="First day of the window, YYYY-MM-DD (default 2017-01-01).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Days in the window (default 120); with --append, days to add (default 1).",
)
@click.option(
    "--append",
    is_flag=True,
    help="Add the next --days days to the world generated in --out (read from its "
    "generate.json): one new web_events_<YYYY-MM-DD>.jsonl per day, the same customers "
    "plus newcomers; no existing data file changes. Only the web stream grows: the store, "
    "CRM, app and marketing files keep their initial window.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the files to (created if missing).",
)
@click.option(
    "--store-format",
    type=click.Choice(["csv", "parquet"]),
    default=None,
    help="Write the store system's customer extracts and sales as CSV (default) or as "
    "Parquet with the same records (not with --append: the store files keep their window).",
)
def generate(
    customers: int | None,
    seed: int | None,
    start_date: datetime | None,
    days: int | None,
    append: bool,
    out: Path,
    store_format: str | None,
) -> None:
    """Write realistic raw files for every source, deterministic for a seed, with a
    trickle of deliberately bad records, and the manifest generate.json that --append
    continues from."""
    from devtools.generate import DEFAULT_DAYS, DEFAULT_START_DATE, append_days
    from devtools.generate import generate as generate_files

    start = start_date.date() if start_date is not None else None
    if append and store_format is not None:
        raise click.UsageError(
            "--store-format applies to a new world only: --append adds web event days, and "
            "the store files keep the format they were generated in."
        )
    if append:
        with on_interrupt(
            f"the days finished before it were added to {out} (its generate.json lists them), "
            "the day in progress was not; append again for the days still missing."
        ):
            written = append_days(out, days or 1, customers=customers, seed=seed, start_date=start)
    else:
        if customers is None:
            raise click.UsageError("Missing option '--customers' (required unless --append).")
        if seed is None:
            raise click.UsageError("Missing option '--seed' (required unless --append).")
        with on_interrupt(
            f"the files in {out} are incomplete (no generate.json was written); run the same "
            "command again to write them anew."
        ):
            written = generate_files(
                out,
                customers,
                seed,
                start or DEFAULT_START_DATE,
                days or DEFAULT_DAYS,
                store_format=store_format or "csv",
            )
    for file in written:
        how = f"runner load {file.source} {file.path}"
        if file.extract_date is not None:
            how += f" --extract-date {file.extract_date}"
        click.echo(f"{file.path}: {file.rows} records; load with `{how}`")
    if not append:
        click.echo(f"Add days to this world with `runner generate --append --out {out}`.", err=True)


def main() -> None:
    cli(prog_name="runner")
