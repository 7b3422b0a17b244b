"""One configuration: the runner reads the same dbt project, profile and target as dbt.

Targets written like the project's own profiles (plain values and
`{{ env_var('NAME', 'default') }}`, optionally `| as_number`) are read directly, which
takes milliseconds; any other profile, and every profile with a problem, is rendered by
dbt's own renderer (importing dbt takes seconds), so `env_var(...)` defaults, targets,
credentials and error messages always mean exactly what they mean to `dbt build`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from runner.errors import RunnerError

PROFILE_NAME = "customer_analytics"
PROJECT_FILE = "dbt_project.yml"


@dataclass(frozen=True)
class Settings:
    """Where the project is, which profile file and target to use, and the credentials."""

    project_dir: Path
    profiles_dir: Path
    target: str
    # ProfileCredentials, or the adapter's own credentials object (DuckDBCredentials,
    # PostgresCredentials) for a profile only dbt can render: the same attributes
    credentials: Any

    @property
    def adapter_type(self) -> str:
        return str(self.credentials.type)

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file, a relative path taken from the project folder."""
        path = Path(self.credentials.path)
        return path if path.is_absolute() else self.project_dir / path

    @property
    def spark_conf(self) -> dict[str, str]:
        """Spark: the profile's server_side_parameters, as dbt-spark's session method
        passes them to SparkSession.builder, with the metastore's and the warehouse
        folder's relative paths taken from the project folder (dbt runs there; the runner
        may not), so the runner's session and dbt's are the same."""
        conf = {
            str(key): str(value)
            for key, value in (
                getattr(self.credentials, "server_side_parameters", None) or {}
            ).items()
        }
        warehouse = conf.get("spark.sql.warehouse.dir")
        if warehouse and "://" not in warehouse and not Path(warehouse).is_absolute():
            conf["spark.sql.warehouse.dir"] = str(self.project_dir / warehouse)
        url = conf.get(DERBY_URL_KEY, "")
        match = re.match(r"(jdbc:derby:;databaseName=)([^;]+)(.*)", url)
        if match and not Path(match[2]).is_absolute():
            conf[DERBY_URL_KEY] = f"{match[1]}{self.project_dir / match[2]}{match[3]}"
        options = conf.get("spark.driver.extraJavaOptions", "").split(" ")
        for index, option in enumerate(options):
            log = option.removeprefix(DERBY_LOG_OPTION)
            if log != option and not Path(log).is_absolute():
                options[index] = f"{DERBY_LOG_OPTION}{self.project_dir / log}"
        if options != [""]:
            conf["spark.driver.extraJavaOptions"] = " ".join(options)
        return conf

    @cached_property
    def is_production(self) -> bool:
        """Whether this target writes the production schemas (see `schema`). Read from
        dbt_project.yml once per Settings: the API asks for every query it writes."""
        return self.target in production_targets(self.project_dir)

    def schema(self, layer: str) -> str:
        """The schema of a layer (raw, staging, intermediate, snapshots, marts) on this
        target: the layer's own name on a production target, `<target>_<layer>` on any
        other (a target `dev` writes dev_raw, dev_marts, ...). The same rule as the
        macro generate_schema_name, which dbt uses for every model."""
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}: one of {', '.join(LAYERS)}")
        return layer if self.is_production else f"{self.target}_{layer}"

    def relation(self, layer: str, name: str) -> str:
        """`schema.name` of a table or view in a layer, for SQL the runner writes."""
        return f"{self.schema(layer)}.{name}"

    @property
    def serving_dir(self) -> Path:
        """DuckDB: the folder beside the warehouse file with the published copies of the
        marts that `runner serve` reads (runner.serving)."""
        path = self.duckdb_path
        return path.with_name(f"{path.name}.serving")

    @property
    def intake_spool(self) -> Path:
        """The spool of the HTTP intake (runner.intake): a SQLite file where `runner serve`
        keeps the app events it accepted until they land in the warehouse, one per target
        and warehouse. In the folder RUNNER_INTAKE_DIR when set; else DuckDB: beside the
        warehouse file (`warehouse.duckdb.intake-duckdb.sqlite`), PostgreSQL: in the
        project's .tmp/intake/ (`postgres-127.0.0.1-5432-analytics.sqlite`), Spark: there
        too, named after the host and the warehouse folder."""
        explicit = os.environ.get(INTAKE_DIR_VARIABLE)
        if self.adapter_type == "duckdb":
            path = self.duckdb_path
            folder = Path(explicit) if explicit else path.parent
            return folder / f"{path.name}.intake-{self.target}.sqlite"
        credentials = self.credentials
        folder = Path(explicit) if explicit else self.project_dir / ".tmp" / "intake"
        parts: tuple[object, ...] = (credentials.host, credentials.port, credentials.database)
        if self.adapter_type == "spark":  # one metastore: the session's data folder
            parts = (credentials.host, self.spark_conf.get("spark.sql.warehouse.dir"))
        where = "-".join(str(part) for part in parts)
        return folder / f"{self.target}-{re.sub(r'[^A-Za-z0-9_.-]', '_', where)}.sqlite"


# Spark's embedded metastore (Derby): where its database is, in the JDBC URL.
DERBY_URL_KEY = "spark.hadoop.javax.jdo.option.ConnectionURL"
DERBY_LOG_OPTION = "-Dderby.stream.error.file="
# The folder of the intake's spools, when not the default (Settings.intake_spool).
INTAKE_DIR_VARIABLE = "RUNNER_INTAKE_DIR"
# The warehouse's layers, each a schema (prefixed with the target's name off production).
LAYERS = ("raw", "staging", "intermediate", "snapshots", "marts")
# dbt_project.yml's var naming the production targets, and its value when absent.
PRODUCTION_TARGETS_VAR = "production_targets"
DEFAULT_PRODUCTION_TARGETS = ("duckdb", "postgres")


def production_targets(project_dir: Path) -> frozenset[str]:
    """The targets that write the production schemas: the var `production_targets` of
    dbt_project.yml (the profile's `duckdb` and `postgres` targets by default)."""
    import yaml

    project = yaml.safe_load((project_dir / PROJECT_FILE).read_text(encoding="utf-8")) or {}
    names = (project.get("vars") or {}).get(PRODUCTION_TARGETS_VAR, DEFAULT_PRODUCTION_TARGETS)
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise RunnerError(
            f"{PROJECT_FILE}: the var {PRODUCTION_TARGETS_VAR} must be a list of target names."
        )
    return frozenset(names)


def find_project_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The dbt project folder: the option, else DBT_PROJECT_DIR, else the nearest folder
    upwards from the working directory with a dbt_project.yml, else the folder this
    package was installed from."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("DBT_PROJECT_DIR"):
        candidates.append(Path(os.environ["DBT_PROJECT_DIR"]))
    else:
        cwd = Path.cwd()
        candidates.extend([cwd, *cwd.parents])
        candidates.append(Path(__file__).resolve().parent.parent)
    for candidate in candidates:
        if (candidate / PROJECT_FILE).is_file():
            return candidate.resolve()
    raise RunnerError(
        f"No dbt project found (looked for {PROJECT_FILE} in {candidates[0]}"
        f"{' and above' if len(candidates) > 1 else ''}). Run from the project folder or "
        "pass --project-dir / set DBT_PROJECT_DIR."
    )


def find_profiles_dir(project_dir: Path, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding profiles.yml, searched in dbt's order: the option, else
    DBT_PROFILES_DIR, else the project folder, else the working directory, else ~/.dbt."""
    if explicit:
        return Path(explicit).resolve()
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"]).resolve()
    for candidate in (project_dir, Path.cwd(), Path.home() / ".dbt"):
        if (candidate / "profiles.yml").is_file():
            return candidate.resolve()
    raise RunnerError(
        f"No profiles.yml found (looked in {project_dir}, {Path.cwd()} and ~/.dbt). "
        "Run `make setup`, which copies profiles.yml.example into the project folder."
    )


def _prepare_dbt_context() -> None:
    """dbt's renderer reads global flags and an invocation context; give it defaults."""
    from dbt.flags import get_flags, set_from_args
    from dbt_common.context import set_invocation_context

    set_invocation_context(dict(os.environ))
    if not hasattr(get_flags(), "LOG_CACHE_EVENTS"):  # type: ignore[no-untyped-call]
        set_from_args(argparse.Namespace(), None)


def load_settings(
    target: str | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve project, profile and target (None: the profile's default target)."""
    project = find_project_dir(project_dir)
    profiles = find_profiles_dir(project, profiles_dir)
    simple = read_simple_profile(profiles / "profiles.yml", target)
    if simple is None:
        target_name, credentials = _render_profile_with_dbt(profiles, target)
    else:
        target_name, credentials = simple
    return Settings(
        project_dir=project, profiles_dir=profiles, target=target_name, credentials=credentials
    )


@dataclass(frozen=True)
class ProfileCredentials:
    """A target's connection settings, as dbt's credentials object holds them (the
    attributes the runner uses)."""

    type: str  # "duckdb", "postgres" or "spark"
    schema: str
    database: str | None = None
    path: str | None = None  # duckdb
    host: str | None = None  # postgres
    port: int | None = None
    user: str | None = None
    password: str | None = None
    settings: dict[str, Any] | None = None  # duckdb: SET options, e.g. memory_limit
    method: str | None = None  # spark: dbt-spark's connection method (session, thrift...)
    server_side_parameters: dict[str, Any] | None = None  # spark: the session's conf


# The one Jinja expression read without dbt: {{ env_var('NAME'[, 'default']) [| as_number] }}
ENV_VAR_TEMPLATE = re.compile(
    r"\{\{\s*env_var\(\s*(?P<q>['\"])(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P=q)\s*"
    r"(?:,\s*(?P<dq>['\"])(?P<default>[^'\"\\{}]*)(?P=dq)\s*)?\)"
    r"\s*(?P<number>\|\s*as_number\s*)?\}\}"
)
NUMBER_TEXT = re.compile(r"0|[1-9][0-9]*")  # what as_number reads as the same int
SIMPLE_TARGET_KEYS = {
    "duckdb": {"type", "threads", "path", "schema", "settings"},
    "postgres": {"type", "threads", "host", "port", "user", "password", "dbname", "schema"},
    "spark": {"type", "threads", "method", "host", "schema", "server_side_parameters"},
}


class _NotSimple(Exception):
    """The profile needs dbt's renderer."""


def read_simple_profile(path: Path, target: str | None) -> tuple[str, ProfileCredentials] | None:
    """The target name and credentials of the profile, read without dbt when the target
    is written like the project's own profiles.yml.example: a duckdb target with `path`
    and `schema` (and `settings`), or a postgres target with `host`, `port`, `user`,
    `password`, `dbname`, `schema` (and `threads`), each a plain value or
    `{{ env_var('NAME', 'default') }}`
    (`| as_number` for the port), giving what dbt's renderer gives. None for anything
    else, including every profile with a problem: dbt then reads it and reports it."""
    try:
        return _read_simple_profile(path, target)
    except Exception:  # e.g. a YAML error, a missing variable: dbt says it best
        return None


def _read_simple_profile(path: Path, target: str | None) -> tuple[str, ProfileCredentials]:
    import yaml

    text = path.read_bytes().decode("utf-8")
    profile = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))[PROFILE_NAME]
    target_name = target if target is not None else _render(profile["target"])
    output = profile["outputs"][target_name]
    if not isinstance(target_name, str) or not isinstance(output, dict):
        raise _NotSimple
    kind = output.get("type")
    if kind not in SIMPLE_TARGET_KEYS or not set(output) <= SIMPLE_TARGET_KEYS[kind]:
        raise _NotSimple
    mapping = "server_side_parameters" if kind == "spark" else "settings"
    settings = output.get(mapping, {})
    if not isinstance(settings, dict) or not all(isinstance(key, str) for key in settings):
        raise _NotSimple
    settings = {key: _render(value) for key, value in settings.items()}
    values = {key: _render(value) for key, value in output.items() if key != mapping}
    if type(values.pop("threads", 1)) is not int:
        raise _NotSimple  # dbt validates (or refuses) anything else
    port = values.pop("port", None)
    texts = {key: value for key, value in values.items() if type(value) is str}
    if len(texts) != len(values):
        raise _NotSimple
    if kind == "duckdb":
        if ":" in texts["path"]:
            raise _NotSimple  # in memory, a URL (md:, s3:...): dbt-duckdb's business
        # the database name dbt-duckdb derives from the path
        database = os.path.splitext(os.path.basename(urlparse(texts["path"]).path))[0]
        if not database:
            raise _NotSimple
        credentials = ProfileCredentials(
            type=kind,
            schema=texts["schema"],
            database=database,
            path=texts["path"],
            settings=settings,
        )
    elif kind == "spark":
        if texts.get("method") != "session" or port is not None:
            raise _NotSimple  # thrift, http, odbc: dbt-spark's own reading
        credentials = ProfileCredentials(
            type=kind,
            schema=texts["schema"],
            host=texts["host"],
            method="session",
            # as dbt-spark's credentials: values as text, ANSI mode off (always)
            server_side_parameters={
                **{key: str(value) for key, value in settings.items()},
                "spark.sql.ansi.enabled": "false",
            },
        )
    else:
        if type(port) is not int or not 0 <= port <= 65535:
            raise _NotSimple
        credentials = ProfileCredentials(
            type=kind,
            schema=texts["schema"],
            database=texts["dbname"],
            host=texts["host"],
            port=port,
            user=texts["user"],
            password=texts["password"],
        )
    return target_name, credentials


def _render(value: object) -> object:
    """A profile value as dbt's renderer gives it: non-strings unchanged, text without
    Jinja unchanged, the env_var template as the variable's text (a number with
    `| as_number`). Raises _NotSimple for anything else."""
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _NotSimple  # dates, floats, lists...: dbt converts or validates them
        return value
    match = None
    if "{" not in value and "\n" not in value and "\r" not in value:
        text = value  # Jinja leaves it as it is
    else:
        match = ENV_VAR_TEMPLATE.fullmatch(value)
        if match is None:
            return _render_embedded(value)
        text = os.environ.get(match["name"], match["default"])
        if text is None:
            raise _NotSimple  # dbt: "Env var required but not provided"
    if "DBT_ENV_SECRET" in value or "DBT_ENV_SECRET" in text:
        raise _NotSimple  # dbt's renderer handles (and mangles) its secret markers
    if match and match["number"]:
        if not NUMBER_TEXT.fullmatch(text):
            raise _NotSimple  # dbt: literal_eval, or "Could not convert value"
        return int(text)
    return text


def _render_embedded(value: str) -> str:
    """Text with env_var templates inside it (`jdbc:derby:;databaseName={{ env_var('D',
    '.tmp') }}/metastore_db`), each replaced by the variable's text, as Jinja renders it.
    Raises _NotSimple for any other Jinja, `| as_number`, or a variable without a value."""
    pieces: list[str] = []
    end = 0
    for match in ENV_VAR_TEMPLATE.finditer(value):
        text = os.environ.get(match["name"], match["default"])
        if match["number"] or text is None:
            raise _NotSimple
        pieces += [value[end : match.start()], text]
        end = match.end()
    pieces.append(value[end:])
    outside = "".join(pieces[::2])
    if not pieces[1:] or any(mark in outside for mark in ("{", "}", "\n", "\r")):
        raise _NotSimple
    text = "".join(pieces)
    if "DBT_ENV_SECRET" in value or "DBT_ENV_SECRET" in text:
        raise _NotSimple
    return text


def _render_profile_with_dbt(profiles: Path, target: str | None) -> tuple[str, Any]:
    """Target name and credentials by dbt's own reading of the profile (slow: imports
    dbt), for profiles read_simple_profile leaves alone; dbt's errors become RunnerErrors."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.exceptions import DbtProfileError

    _prepare_dbt_context()
    raw_profiles = read_profile(str(profiles))
    if PROFILE_NAME not in raw_profiles:
        raise RunnerError(
            f"{profiles / 'profiles.yml'} has no profile '{PROFILE_NAME}'. "
            "Copy profiles.yml.example (`make setup`) or add the profile."
        )
    try:
        profile = Profile.from_raw_profiles(
            raw_profiles, PROFILE_NAME, ProfileRenderer({}), target_override=target
        )
    except DbtProfileError as exc:
        raise RunnerError(str(exc).strip()) from None
    return profile.target_name, profile.credentials


# --- app messaging (`runner message`, runner/messaging.py) ------------------------------

MESSAGE_SENDERS = ("file", "twilio")
TWILIO_DEFAULT_API_URL = "https://api.twilio.com"
DEFAULT_MESSAGE_FILE = Path(".tmp") / "messages.jsonl"


@dataclass(frozen=True)
class MessagingSettings:
    """How `runner message` sends: the sender and its parameters, from the environment
    only (the Twilio credentials are never read from a file, printed or logged).

    RUNNER_MESSAGE_SENDER   file (default) or twilio
    RUNNER_MESSAGE_FILE     the file sender's JSON Lines file (default .tmp/messages.jsonl,
                            relative to the project folder)
    TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN   the account (twilio: required)
    TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID   the sender number or service (one needed)
    TWILIO_API_URL          the gateway's base URL (default https://api.twilio.com; the
                            emulator's for tests)
    RUNNER_MESSAGE_TIMEOUT_SECONDS, RUNNER_MESSAGE_MAX_ATTEMPTS, RUNNER_MESSAGE_BACKOFF_SECONDS
                            each request's timeout (30), tries per message (6) and the first
                            backoff between tries (0.5 s, doubling, with jitter)
    RUNNER_MESSAGE_WORKERS  requests in parallel (4)
    """

    sender: str = "file"
    message_file: Path = DEFAULT_MESSAGE_FILE
    account_sid: str = ""
    auth_token: str = field(default="", repr=False)
    from_number: str = ""
    messaging_service_sid: str = ""
    api_url: str = TWILIO_DEFAULT_API_URL
    timeout_seconds: float = 30.0
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    workers: int = 4

    @classmethod
    def from_environment(
        cls, project_dir: Path, environ: Mapping[str, str] | None = None
    ) -> MessagingSettings:
        env = os.environ if environ is None else environ
        sender = env.get("RUNNER_MESSAGE_SENDER", "file").strip().lower() or "file"
        if sender not in MESSAGE_SENDERS:
            raise RunnerError(
                f"RUNNER_MESSAGE_SENDER is {sender!r}: set it to one of "
                f"{', '.join(MESSAGE_SENDERS)} (or leave it unset for the file sender)."
            )
        message_file = Path(env.get("RUNNER_MESSAGE_FILE") or DEFAULT_MESSAGE_FILE)
        if not message_file.is_absolute():
            message_file = project_dir / message_file
        settings = cls(
            sender=sender,
            message_file=message_file,
            account_sid=env.get("TWILIO_ACCOUNT_SID", "").strip(),
            auth_token=env.get("TWILIO_AUTH_TOKEN", "").strip(),
            from_number=env.get("TWILIO_FROM", "").strip(),
            messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID", "").strip(),
            api_url=(env.get("TWILIO_API_URL") or TWILIO_DEFAULT_API_URL).strip(),
            timeout_seconds=_positive(env, "RUNNER_MESSAGE_TIMEOUT_SECONDS", 30.0),
            max_attempts=int(_positive(env, "RUNNER_MESSAGE_MAX_ATTEMPTS", 6)),
            backoff_seconds=_positive(env, "RUNNER_MESSAGE_BACKOFF_SECONDS", 0.5, zero=True),
            workers=int(_positive(env, "RUNNER_MESSAGE_WORKERS", 4)),
        )
        return settings

    def check_credentials(self) -> None:
        """Raise a RunnerError naming what is missing for the chosen sender."""
        if self.sender != "twilio":
            return
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.account_sid),
                ("TWILIO_AUTH_TOKEN", self.auth_token),
            )
            if not value
        ]
        if not (self.from_number or self.messaging_service_sid):
            missing.append("TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID)")
        if missing:
            raise RunnerError(
                "RUNNER_MESSAGE_SENDER is twilio, but the environment lacks "
                f"{', '.join(missing)}: set them (credentials come from the environment "
                "only, never from a file), or unset RUNNER_MESSAGE_SENDER to write the "
                "messages to a file. Nothing was written."
            )

    def describe(self) -> str:
        """The sender, for the command's first line (never the token)."""
        if self.sender == "file":
            return f"file ({self.message_file})"
        return f"twilio ({self.api_url}, account {self.account_sid})"


def _positive(env: Mapping[str, str], name: str, default: float, zero: bool = False) -> float:
    """A number of the environment, default when unset; a RunnerError when not a number > 0
    (>= 0 with `zero`)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or (value == 0 and not zero):
        raise RunnerError(f"{name} is {text!r}: set it to a number {'>=' if zero else '>'} 0.")
    return value
