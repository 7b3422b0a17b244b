"""`make evaluate`: dbt-project-evaluator's checks on a scratch copy of the project.

The dbt package hub may be unreachable and the project has no packages.yml (tests
keep it so), so this copies the project's files (tracked and untracked, not ignored)
to .tmp/evaluate/project, adds a packages.yml with local checkouts of
dbt-project-evaluator and of dbt-utils (its dependency, pointed to locally in a copy of
the evaluator), runs `dbt deps` and `dbt build --select package:dbt_project_evaluator`
on a scratch DuckDB file with the package's defaults, the project's own
unique_combination_of_columns registered as a primary-key test, and lists every
violation (every non-empty fct_ table but the coverage summaries). The README
("dbt-project-evaluator") says why each remaining one is deliberate.

    make evaluate EVALUATOR_DIR=/path/to/dbt-project-evaluator DBT_UTILS_DIR=/path/to/dbt-utils
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

PROJECT_DIR = Path(__file__).resolve().parents[1]
# Summaries the package always fills; they are not violations.
SUMMARIES = {"fct_documentation_coverage", "fct_test_coverage"}
PRIMARY_KEY_TESTS = [
    ["dbt.test_unique", "dbt.test_not_null"],
    ["customer_analytics.test_unique_combination_of_columns"],
]


class EvaluateError(Exception):
    """What went wrong, and what to do."""


def project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_DIR,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (PROJECT_DIR / name).is_file()]


def checkout(path: str, label: str, variable: str) -> Path:
    folder = Path(path).expanduser().resolve() if path else None
    if folder is None or not (folder / "dbt_project.yml").is_file():
        raise EvaluateError(
            f"No {label} checkout at {path or '(not given)'}: clone it and pass "
            f"{variable}=/path/to/it (the dbt package hub may be unreachable)."
        )
    return folder


def prepare(work: Path, evaluator: Path, dbt_utils: Path) -> Path:
    """The scratch project, with the evaluator (and through it dbt-utils) installed."""
    if work.exists():
        shutil.rmtree(work)
    project = work / "project"
    for name in project_files():
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, target)
    # The evaluator's own packages.yml names dbt-utils on the hub: point it at the
    # local checkout in a copy, so `dbt deps` needs no network.
    package = work / "dbt-project-evaluator"
    shutil.copytree(
        evaluator,
        package,
        ignore=shutil.ignore_patterns(".git", "integration_tests*", "target", "dbt_packages"),
    )
    (package / "packages.yml").write_text(f"packages:\n  - local: {dbt_utils}\n", encoding="utf-8")
    (project / "packages.yml").write_text(
        f"packages:\n  - local: {dbt_utils}\n  - local: {package}\n", encoding="utf-8"
    )
    return project


def dbt(project: Path, *args: str, env: dict[str, str]) -> None:
    command = [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(project)]
    print(f"+ dbt {' '.join(args)}", flush=True)
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise EvaluateError(f"dbt {args[0]} failed (its output is above).")


def violations(database: Path) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    with duckdb.connect(str(database), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_name like 'fct\\_%' escape '\\' order by table_name"
        ).fetchall()
        for schema, name in tables:
            if name in SUMMARIES:
                continue
            cursor = con.execute(f'select * from "{schema}"."{name}"')
            columns = [column[0] for column in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            if rows:
                found[name] = rows
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluator-dir", default=os.environ.get("EVALUATOR_DIR", ""))
    parser.add_argument("--dbt-utils-dir", default=os.environ.get("DBT_UTILS_DIR", ""))
    parser.add_argument("--work-dir", type=Path, default=PROJECT_DIR / ".tmp" / "evaluate")
    args = parser.parse_args(argv)
    try:
        evaluator = checkout(args.evaluator_dir, "dbt-project-evaluator", "EVALUATOR_DIR")
        dbt_utils = checkout(args.dbt_utils_dir, "dbt-utils", "DBT_UTILS_DIR")
        work = args.work_dir.resolve()
        project = prepare(work, evaluator, dbt_utils)
        database = work / "evaluate.duckdb"
        env = {
            **os.environ,
            "DUCKDB_PATH": str(database),
            "DBT_PROFILES_DIR": str(PROJECT_DIR),
            "DBT_TARGET_PATH": str(project / "target"),
            "DBT_LOG_PATH": str(project / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        env.pop("DBT_PROJECT_DIR", None)
        dbt(project, "deps", env=env)
        variables = json.dumps({"primary_key_test_macros": PRIMARY_KEY_TESTS})
        dbt(
            project,
            "build",
            "--target",
            "duckdb",
            "--select",
            "package:dbt_project_evaluator",
            "--vars",
            variables,
            "--quiet",
            env=env,
        )
        found = violations(database)
    except EvaluateError as exc:
        print(f"make evaluate: {exc}", file=sys.stderr)
        return 1
    total = sum(len(rows) for rows in found.values())
    print(f"\ndbt-project-evaluator: {total} violations in {len(found)} checks.")
    for name, rows in found.items():
        print(f"\n{name} ({len(rows)}):")
        for row in rows:
            print("  " + ", ".join(f"{key}={value}" for key, value in row.items()))
    print("\nWhy the remaining ones are deliberate: README.md, 'dbt-project-evaluator'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
