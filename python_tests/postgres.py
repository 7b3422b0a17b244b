"""A PostgreSQL server for tests, and throwaway databases on it.

The server is the one the standard PG* variables point at (libpq defaults otherwise).
When none answers, a throwaway cluster is started from the local PostgreSQL binaries
(initdb/pg_ctl; as an unprivileged user when running as root, since PostgreSQL refuses
to run as root) and removed afterwards. Used by the pytest fixtures and benchmarks.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def connect(self, dbname: str = "postgres"):
        con = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname,
            connect_timeout=5,
        )
        con.autocommit = True
        return con

    def env(self, dbname: str) -> dict[str, str]:
        """The PG* variables that point dbt's profile and the runner at `dbname`."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": dbname,
        }


def server_from_environment() -> PostgresServer:
    return PostgresServer(
        host=os.environ.get("PGHOST", "localhost"),
        port=int(os.environ.get("PGPORT", "5432")),
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD", ""),
    )


def answers(server: PostgresServer) -> bool:
    try:
        server.connect().close()
    except psycopg2.OperationalError:
        return False
    return True


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_unprivileged(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "nobody", "--", *command]


@contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """Start a private cluster on a free port of 127.0.0.1; stop and remove it after."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise RuntimeError("no PostgreSQL server answers and initdb/pg_ctl are not installed")
    root = Path(tempfile.mkdtemp(prefix="ca-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, user="nobody")
    root.chmod(0o700)
    port = _free_port()
    run = {"check": True, "capture_output": True, "cwd": "/"}
    try:
        subprocess.run(
            _as_unprivileged([initdb, "-D", str(data), "-U", "postgres", "-A", "trust"]), **run
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_unprivileged(
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
            ),
            **run,
        )
        try:
            yield PostgresServer(host="127.0.0.1", port=port, user="postgres", password="")
        finally:
            subprocess.run(
                _as_unprivileged([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                check=False,
                capture_output=True,
                cwd="/",
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The server of the PG* variables if one answers, else a throwaway cluster."""
    server = server_from_environment()
    if answers(server):
        yield server
        return
    with throwaway_cluster() as started:
        yield started


@contextmanager
def throwaway_database(
    server: PostgresServer, prefix: str = "ca_test", name: str | None = None
) -> Iterator[str]:
    """Create an empty database, `name` or a unique name with `prefix`; drop it afterwards."""
    name = name or f"{prefix}_{uuid.uuid4().hex[:10]}"
    con = server.connect()
    try:
        with con.cursor() as cursor:
            cursor.execute(f'create database "{name}"')
        yield name
    finally:
        with con.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}" with (force)')
        con.close()
