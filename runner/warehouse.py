"""Connections to the warehouse named by the dbt target: DuckDB, PostgreSQL or Spark.

All expose the same small interface: run statements, fetch rows, bulk-copy a CSV
file into a table, and group statements in one transaction. SQL passed in uses `?`
placeholders on both engines.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.config import Settings
from runner.errors import RunnerError, WarehouseConnectionLost
from runner.sources import added_column_statements, ddl_statements, spark_ddl_statements

DUCKDB_DEFAULT_MAX_LINE = 2 * 1024 * 1024
# The longest line DuckDBWarehouse.copy_lines takes: a file with a longer one is refused
# (LinesRefused), to be read another way.
LINE_MAX_BYTES = 16 * 1024 * 1024
Row = tuple[Any, ...]
Rows = list[Row]
"""The rows of a query."""


# The quote character of the CSV files for Warehouse.copy_csv: a control character, which
# valid JSON never holds raw, so JSON text goes in without escaping (a QUOTE in any value
# is doubled).
QUOTE = "\x01"


def csv_field(value: str | int | None) -> str:
    if value is None:
        return ""  # unquoted empty field: NULL on both engines
    if isinstance(value, int):
        return str(value)
    return QUOTE + value.replace(QUOTE, QUOTE + QUOTE) + QUOTE


def _csv_value(value: Any) -> str | int | None:
    """A Python value as write_csv writes it: floats exactly (repr), timestamps in ISO."""
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def write_csv(rows: Iterable[tuple[str | int | None, ...]], path: Path) -> int:
    """Headerless CSV as Warehouse.copy_csv reads it: fields separated by commas, every
    string quoted with QUOTE (a QUOTE in it doubled), only NULL an empty unquoted field
    (Python's csv module cannot tell None from "" before 3.12), lines ending in \\n.
    Returns the length of the longest line in bytes, which DuckDB's reader must be told
    about."""
    longest = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        for row in rows:
            line = ",".join(map(csv_field, row)) + "\n"
            handle.write(line)
            longest = max(longest, len(line))
    return 4 * longest  # characters to a bound on UTF-8 bytes


class Warehouse:
    """Base class; use `connect(settings)`, which gives the connection its settings: the
    target whose schemas it reads and writes (`raw`)."""

    kind: str
    settings: Settings | None = None
    updates_in_place = True
    """Whether rows can be deleted and updated. Not on Spark, whose Parquet tables (no
    Delta Lake) only take appended rows: there the runner appends a newer row where the
    other engines replace one, and the staging models keep each key's latest row."""

    def raw(self, table: str) -> str:
        """`schema.table` of a landing table in the target's raw schema
        (Settings.relation('raw', table): `raw.loads` on a production target)."""
        return self._settings().relation("raw", table)

    def _settings(self) -> Settings:
        if self.settings is None:
            raise RunnerError(
                "This warehouse connection was opened without settings, so it does not know "
                "its target's schemas: open it with runner.warehouse.connect(settings)."
            )
        return self.settings

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], Rows]:
        """Rows of a query, with the column names."""
        raise NotImplementedError

    def copy_csv(
        self,
        table: str,
        columns: Sequence[str],
        csv_path: Path,
        longest_line: int,
        constants: dict[str, Any] | None = None,
        *,
        binary: bool = False,
    ) -> None:
        """Bulk-load a headerless CSV file (RFC 4180 quoting, but with the quote character
        \\x01, doubled inside a field; an empty unquoted field is NULL; lines end in \\n)
        whose longest line has at most `longest_line` bytes; runner.loading.write_csv
        writes such files. `constants` (DuckDB only): more columns, each with one value
        for every row. `binary` (PostgreSQL only): the file is in PostgreSQL's binary
        COPY format instead."""
        raise NotImplementedError

    def append_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """Append `rows` (tuples of Python values in `columns` order; the other columns
        NULL) to `table` in one bulk statement: through a CSV file and copy_csv."""
        if not rows:
            return
        with tempfile.TemporaryDirectory(prefix="runner-rows-") as tmp:
            path = Path(tmp) / "rows.csv"
            longest = write_csv((tuple(map(_csv_value, row)) for row in rows), path)
            self.copy_csv(table, columns, path, longest)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def usable(self) -> bool:
        """Whether the connection can serve another request (runner.serving's pool)."""
        return True

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def table_exists(self, schema: str, table: str) -> bool:
        _, rows = self.query(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            (schema, table),
        )
        return bool(rows[0][0] > 0)

    def ensure_raw_tables(self) -> None:
        """Create the target's raw schema and every landing table in it that is missing,
        from the registry (runner.sources), which also renders the dbt macro that the
        project's on-run-start hook runs."""
        settings = self._settings()
        schema = settings.schema("raw")
        for statement in raw_table_statements(schema):
            self.execute(statement)
        for table, column, statement in added_column_statements(schema):
            _, rows = self.query(
                "select count(*) from information_schema.columns "
                "where table_schema = ? and table_name = ? and column_name = ?",
                (schema, table, column),
            )
            if rows[0][0] == 0:  # a table created before the column was in the registry
                self.execute(statement)

    def try_exclusive(self, name: str) -> bool:
        """Claim the right to be the only run doing `name` on this warehouse, for as long
        as this connection lives (a dropped or killed run releases it). False when
        another run holds it. DuckDB: always True, its file already has one writer."""
        return True


def raw_table_statements(schema: str) -> list[str]:
    """The statements that create the raw schema `schema` and its missing landing tables
    (runner.sources.ddl_statements; macros/create_raw_landing_tables.sql is the same DDL)."""
    return ddl_statements(schema)


class LinesRefused(Exception):
    """DuckDBWarehouse.copy_lines cannot read a file exactly; the reader's first line says
    why. Not an error of the user's: the file is read another way."""


def _setting_literal(value: object) -> str:
    """A DuckDB setting's value in a SET statement (a bool or a number)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(int(value))  # type: ignore[call-overload]


class WarehouseLocked(RunnerError):
    """Another process holds the DuckDB file; `holder` names it (" (PID 12)"), or is ""."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


class DuckDBWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(self, path: Path, read_only: bool = False, settings: dict[str, Any] | None = None):
        """`settings`: the profile's DuckDB options (e.g. memory_limit), as dbt sets them."""
        import duckdb

        if read_only and not path.exists():
            raise RunnerError(
                f"The warehouse {path} does not exist yet. Load data and run `runner build` first."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(
                str(path),
                read_only=read_only,
                config={key: str(value) for key, value in (settings or {}).items()},
            )
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                holder = re.search(r"lock is held in (.*?)(?:\. See also|$)", str(exc))
                who = f" ({holder.group(1).strip()})" if holder else ""
                raise WarehouseLocked(
                    f"The DuckDB warehouse {path} is in use by another process{who}. DuckDB "
                    "allows one writer at a time, so this run did nothing. Wait for the other "
                    "one to finish, then run this again.",
                    who,
                ) from None
            raise RunnerError(f"Cannot open the DuckDB warehouse {path}: {exc}") from None
        self.path = path
        self._after_rollback: list[str] = []  # statements to run after a rollback (_setting)

    def cursor(self) -> DuckDBWarehouse:
        """Another connection to the same open database, for use in another thread (a
        DuckDB connection is not thread-safe). Closing this one closes its cursors."""
        other = object.__new__(DuckDBWarehouse)
        other._con, other.path = self._con.cursor(), self.path
        other._after_rollback = []
        other.settings = self.settings
        return other

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._con.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], Rows]:
        cursor = self._con.execute(sql, list(params))
        return [d[0] for d in cursor.description], cursor.fetchall()

    def copy_csv(
        self,
        table: str,
        columns: Sequence[str],
        csv_path: Path,
        longest_line: int,
        constants: dict[str, Any] | None = None,
        *,
        binary: bool = False,
    ) -> None:
        if binary:
            raise NotImplementedError("DuckDB bulk-loads CSV files, not PostgreSQL's binary COPY")
        constants = constants or {}
        column_types = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
        max_line = max(DUCKDB_DEFAULT_MAX_LINE, longest_line + 1024)
        # DuckDB writes a big insert's row groups to disk (compressing them) in batches of
        # write_buffer_row_group_count, or at the commit: one at a time spreads that work
        # over a load that copies block by block, instead of piling it up at the end.
        buffered = self._con.execute(
            "select value from duckdb_settings() where name = 'write_buffer_row_group_count'"
        ).fetchall()  # (not every DuckDB version has it)
        setting = self._setting("write_buffer_row_group_count", 1) if buffered else nullcontext()
        with setting:
            self._con.execute(
                f"insert into {table} ({', '.join([*columns, *constants])}) "
                f"select {', '.join([*columns, *('?' for _ in constants)])} "
                f"from read_csv(?, columns = {{{column_types}}}, "
                "header = false, delim = ',', quote = '\x01', escape = '\x01', "
                "allow_quoted_nulls = false, auto_detect = false, strict_mode = true, "
                "new_line = '\\n', "  # never guessed from the first row: a CR in a field is data
                f"parallel = false, max_line_size = {max_line}, buffer_size = {4 * max_line})",
                [*constants.values(), str(csv_path)],
            )

    def copy_lines(
        self,
        table: str,
        path: Path,
        columns: tuple[str, str, str],
        flag: tuple[str, str],
        constants: dict[str, Any],
    ) -> int:
        """Land every line of the text file `path` that is not empty as a row of `table`, in
        one statement, the engine's CSV reader splitting and numbering the lines (both
        cores): columns[0] gets the line's number (from 1), columns[1] its text (without
        its \\n; a byte order mark at the start of the file is dropped), columns[2] the
        text flag[1] where the SQL condition flag[0] holds of the text (`line`), else NULL;
        `constants` fill more columns, one value for every row. Returns the rows landed.

        The file must hold no carriage return (the reader would count it as a line end)
        and no NUL (it may drop a line of one): the caller makes sure. The reader refuses
        what else it cannot take exactly (bytes that are not UTF-8, a line over
        LINE_MAX_BYTES): then LinesRefused, and the transaction must be rolled back."""
        import duckdb

        position, text, flagged = columns
        names = ", ".join([position, text, flagged, *constants])
        # The rows carry their positions: their order in storage does not matter, and
        # without keeping it DuckDB writes them from both cores in their final form (the
        # checkpoint at close, about 0.5 s for a million lines otherwise, has nothing left).
        try:
            with self._setting("preserve_insertion_order", False):
                landed = self._con.execute(
                    f"insert into {table} ({names}) "
                    f"select ordinality, line, case when {flag[0]} then ? end"
                    f"{''.join(', ?' for _ in constants)} "
                    "from read_csv(?, columns = {'line': 'VARCHAR'}, header = false, "
                    "delim = chr(0), quote = '', escape = '', auto_detect = false, "
                    "strict_mode = true, new_line = '\\n', "
                    f"max_line_size = {LINE_MAX_BYTES}) with ordinality "
                    "where line is not null",
                    [flag[1], *constants.values(), str(path)],
                ).fetchall()
        except duckdb.InvalidInputException as exc:
            raise LinesRefused(str(exc).splitlines()[0]) from exc
        return int(landed[0][0])

    @contextmanager
    def _setting(self, name: str, value: bool | int) -> Iterator[None]:
        """The connection's setting `name` at `value` while the block runs, then as it was:
        at once, or, when the block left the transaction aborted (where DuckDB takes no
        statement), right after transaction() rolls it back."""
        import duckdb

        ((before,),) = self._con.execute("select current_setting(?)", [name]).fetchall()
        self._con.execute(f"set {name} = {_setting_literal(value)}")
        try:
            yield
        finally:
            restore = f"set {name} = {_setting_literal(before)}"
            try:
                self._con.execute(restore)
            except duckdb.TransactionException:
                self._after_rollback.append(restore)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._con.execute("begin transaction")
        try:
            yield
        except BaseException:
            self._con.execute("rollback")
            while self._after_rollback:
                self._con.execute(self._after_rollback.pop())
            raise
        self._con.execute("commit")

    def close(self) -> None:
        self._con.close()


class PostgresWarehouse(Warehouse):
    kind = "postgres"

    def __init__(self, credentials: Any):
        import psycopg2

        try:
            self._con = psycopg2.connect(
                host=credentials.host,
                port=credentials.port,
                user=credentials.user,
                password=credentials.password or None,
                dbname=credentials.database,
                connect_timeout=10,
                application_name=APPLICATION_NAME,
            )
        except psycopg2.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
            raise RunnerError(
                f"Cannot connect to PostgreSQL at {credentials.host}:{credentials.port}, "
                f"database {credentials.database!r}, user {credentials.user!r}: {reason}. "
                "Check PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE, and that the "
                "database exists (createdb)."
            ) from None
        self._con.autocommit = True
        self._in_transaction = False
        self._where = f"{credentials.host}:{credentials.port}, database {credentials.database!r}"

    def _lost(self, exc: Exception) -> WarehouseConnectionLost | None:
        """The error to raise when `exc` means the connection is gone, else None. A broken
        connection is closed by psycopg2 (`closed` != 0); every later call raises
        InterfaceError. Other OperationalErrors (lock or statement timeouts) are not this."""
        import psycopg2

        if not isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
            return None
        if not self._con.closed:
            return None
        reason = (str(exc).strip().splitlines() or ["closed"])[0]
        return WarehouseConnectionLost(
            f"The connection to the PostgreSQL warehouse ({self._where}) was lost: {reason} "
            "(the server restarted, the session was terminated, or the network dropped). "
            "PostgreSQL rolled back the transaction in progress, so none of it was written; "
            "what was committed before is kept. Run the same command again.",
            reason,
        )

    @staticmethod
    def _placeholders(sql: str) -> str:
        return re.sub(r"\?", "%s", sql.replace("%", "%%"))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            with self._con.cursor() as cursor:
                cursor.execute(self._placeholders(sql), tuple(params))
        except Exception as exc:
            if lost := self._lost(exc):
                raise lost from None
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], Rows]:
        try:
            with self._con.cursor() as cursor:
                cursor.execute(self._placeholders(sql), tuple(params))
                return [d[0] for d in cursor.description], cursor.fetchall()
        except Exception as exc:
            if lost := self._lost(exc):
                raise lost from None
            raise

    def copy_csv(
        self,
        table: str,
        columns: Sequence[str],
        csv_path: Path,
        longest_line: int,
        constants: dict[str, Any] | None = None,
        *,
        binary: bool = False,
    ) -> None:
        if constants:
            raise NotImplementedError("PostgreSQL's COPY has no constants: put them in each row")
        file_format = "format binary" if binary else "format csv, quote e'\\x01'"
        with self._con.cursor() as cursor, csv_path.open("rb") as handle:
            cursor.copy_expert(
                f"copy {table} ({', '.join(columns)}) from stdin with ({file_format})",
                handle,
                size=1 << 20,
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            self._con.autocommit = False
            try:
                yield
            except BaseException:
                if not self._con.closed:  # a lost connection was rolled back by the server
                    self._con.rollback()
                raise
            else:
                self._con.commit()
            finally:
                if not self._con.closed:
                    self._con.autocommit = True
        except Exception as exc:
            if lost := self._lost(exc):
                raise lost from None
            raise

    def ensure_raw_tables(self) -> None:
        # Runs starting together on a new database would race on `create ... if not
        # exists` (PostgreSQL then fails with a duplicate key in its catalog): one at a time.
        with self.transaction():
            self.execute("select pg_advisory_xact_lock(?)", (_lock_key("raw landing tables"),))
            super().ensure_raw_tables()

    def try_exclusive(self, name: str) -> bool:
        _, rows = self.query("select pg_try_advisory_lock(?)", (_lock_key(name),))
        return bool(rows[0][0])

    def close(self) -> None:
        self._con.close()

    def usable(self) -> bool:
        """Open and idle (autocommit, no transaction left open): fit for the next user."""
        import psycopg2.extensions

        if self._con.closed:
            return False
        return bool(
            self._con.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        )


class SparkWarehouse(Warehouse):
    """Spark through a SparkSession in this process (the profile's `session` method).

    The session is the one dbt-spark uses: SparkSession.builder.getOrCreate() gives every
    caller in a process the same session, and the embedded Derby metastore allows one
    process at a time, so the runner and dbt (run in-process by runner.dbt_invoke) must
    share it. Spark has no transactions: `transaction()` groups nothing, and a load
    writes its rows in one Spark job (runner.loading) before its line in raw.loads.
    Parameters (`?`) are Spark SQL's positional parameter markers."""

    kind = "spark"
    updates_in_place = False

    def __init__(self, settings: Settings):
        method = getattr(settings.credentials, "method", None)
        method = str(getattr(method, "value", method))
        if method != "session":
            raise RunnerError(
                f"Target {settings.target!r} uses dbt-spark's {method} method; the runner "
                "loads only through the `session` method (a SparkSession in its own process). "
                "Load with a `session` target that reaches the same metastore, or land the "
                "files with Spark on the cluster (README: Scale)."
            )
        self.spark = spark_session(settings)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.spark.sql(sql, args=list(params) or None)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], Rows]:
        frame = self.spark.sql(sql, args=list(params) or None)
        return list(frame.columns), [tuple(row) for row in frame.collect()]

    def table_exists(self, schema: str, table: str) -> bool:
        return bool(self.spark.catalog.tableExists(f"{schema}.{table}"))

    def ensure_raw_tables(self) -> None:
        """The raw schema and its missing tables (each `create` is a metastore round
        trip: only the missing ones are run)."""
        schema = self._settings().schema("raw")
        create_schema, *creates = spark_ddl_statements(schema)
        if not self.spark.catalog.databaseExists(schema):
            self.execute(create_schema)
        _, shown = self.query(f"show tables in {schema}")  # (listTables reads each table)
        present = {row[1] for row in shown}
        for statement in creates:
            name = statement.split("(", 1)[0].split()[-1].split(".", 1)[1]
            if name not in present:
                self.execute(statement)

    def append_arrow(self, table: str, batches: Sequence[Any]) -> None:
        """Append Arrow tables (pyarrow.Table, the raw table's columns by name) to
        `table`, all in one Spark job: its files are committed together or not at all."""
        target = self.spark.table(table)
        frames = [self.spark.createDataFrame(batch) for batch in batches]
        if not frames:
            return
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other)
        frame.select(*target.columns).write.insertInto(table)

    def append_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """Append `rows` to `table` in one Spark job, typed by the table's own schema."""
        if not rows:
            return
        from pyspark.sql import functions
        from pyspark.sql.types import StructType

        target = self.spark.table(table)
        types = {field.name: field for field in target.schema.fields}
        frame = self.spark.createDataFrame(
            list(rows), schema=StructType([types[column] for column in columns])
        )
        given = set(columns)
        frame.select(
            *(
                functions.col(name)
                if name in given
                else functions.lit(None).cast(types[name].dataType).alias(name)
                for name in target.columns
            )
        ).write.insertInto(table)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield  # Spark has none: see the class's description

    def close(self) -> None:
        pass  # the session stays for dbt and later connections of this process


def spark_session(settings: Settings) -> Any:
    """The process's SparkSession, built as dbt-spark's session method builds it (Hive
    support, the profile's server_side_parameters), or the one already running."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RunnerError(
            f"Target {settings.target!r} is Spark, but pyspark is not installed: run "
            "`make setup-spark` (it installs requirements-spark.lock into .venv)."
        ) from None
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in settings.spark_conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


APPLICATION_NAME = "customer_analytics runner"  # how the runner's sessions show in pg_stat_activity


def _lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (signed 64-bit) for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def connect(settings: Settings, read_only: bool = False) -> Warehouse:
    """Open the warehouse of the settings' target."""
    warehouse: Warehouse
    if settings.adapter_type == "duckdb":
        warehouse = DuckDBWarehouse(
            settings.duckdb_path,
            read_only=read_only,
            settings=getattr(settings.credentials, "settings", None),
        )
    elif settings.adapter_type == "postgres":
        warehouse = PostgresWarehouse(settings.credentials)
    elif settings.adapter_type == "spark":
        warehouse = SparkWarehouse(settings)
    else:
        raise RunnerError(
            f"Target {settings.target!r} uses the {settings.adapter_type} adapter; the runner "
            "supports duckdb, postgres and spark."
        )
    warehouse.settings = settings
    return warehouse


def setup_bi_role(
    warehouse: PostgresWarehouse, role: str, login: bool, password: str | None
) -> bool:
    """Create (or update) the BI role; True when it was created."""
    from psycopg2 import sql

    _, rows = warehouse.query("select count(*) from pg_roles where rolname = ?", (role,))
    exists = rows[0][0] > 0
    options = sql.SQL("login" if login else "nologin")
    with warehouse._con.cursor() as cursor:
        verb = sql.SQL("alter role" if exists else "create role")
        cursor.execute(sql.SQL("{} {} {}").format(verb, sql.Identifier(role), options))
        if login and password:
            cursor.execute(
                sql.SQL("alter role {} password %s").format(sql.Identifier(role)), (password,)
            )
    return not exists
