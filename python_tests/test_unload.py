"""`runner unload`: a load taken back leaves the warehouse as if it never landed, on DuckDB
and PostgreSQL. The sample lands in parts with a build after each; an extra file of web
events and one of store sales land, then files that repeat some of their records (so
the repeats count as repeats), and the extra files are unloaded. After one more plain
incremental build, every mart and incremental model equals a `--full-refresh` of the
same raw data, which is what a warehouse that never had the extra files builds."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner

from python_tests.conftest import SAMPLE_DIR, insert_raw_rows
from python_tests.test_incremental import AS_OF, INCREMENTAL_MODELS, MODELS_ONLY, marts, model_rows
from runner.cli import cli
from runner.config import Settings
from runner.dbt_invoke import run_dbt
from runner.warehouse import connect


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def slices(source: Path, out_dir: Path, bounds: list[tuple[int, int]]) -> list[Path]:
    """Files holding the given ranges of the source's records (a CSV keeps its header)."""
    lines = source.read_bytes().splitlines(keepends=True)
    header = [lines.pop(0)] if source.suffix == ".csv" else []
    paths = []
    for number, (start, end) in enumerate(bounds):
        path = out_dir / f"part{number}{source.suffix}"
        path.write_bytes(b"".join(header + lines[start:end]))
        paths.append(path)
    return paths


def load_id_of(output: str) -> str:
    return re.search(r"\(load ([^)]+)\)", output).group(1)


def test_an_unloaded_file_leaves_the_marts_of_a_warehouse_that_never_had_it(
    settings: Settings, target: str, tmp_path: Path
):
    t = ("--target", target)
    build = [*AS_OF, *MODELS_ONLY]
    for extract in sorted(SAMPLE_DIR.glob("store_customers_*.csv")):
        invoke("load", "store-customers", str(extract), "--no-snapshot", *t)
    for source in ("crm-customers", "crm-interactions", "crm-products", "app-purchases"):
        invoke("load", source, str(SAMPLE_DIR / f"{source.replace('-', '_')}.csv"), *t)
    invoke("load", "app-sessions", str(SAMPLE_DIR / "app_sessions.jsonl"), *t)
    invoke("load", "marketing", str(SAMPLE_DIR / "marketing"), *t)
    # web events and sales: the first part, then the extra file, then a file repeating
    # the extra file's last records (landed later: repeats while the extra file is there)
    web = slices(SAMPLE_DIR / "web_events.jsonl", tmp_path, [(0, 3000), (3000, 3600), (3300, None)])
    sales = slices(SAMPLE_DIR / "store_sales.csv", tmp_path, [(0, 600), (500, 700), (650, None)])
    extra = []
    for number in range(3):
        for source, files in (("web-events", web), ("store-sales", sales)):
            output = invoke("load", source, str(files[number]), *t)
            if number == 1:
                extra.append((load_id_of(output), files[number]))
        assert run_dbt(settings, ["build"], build), f"after part {number + 1}"

    with connect(settings) as warehouse:
        _, [(before,)] = warehouse.query("select count(*) from raw.web_events")
    for (load_id, path), table in zip(extra, ("web_events", "store_sales"), strict=True):
        said = invoke("unload", load_id, *t)
        assert f"Unloaded load {load_id}" in said and f"raw.{table}" in said and str(path) in said
    with connect(settings) as warehouse:
        _, [(after, lines, loads, unloads)] = warehouse.query(
            "select (select count(*) from raw.web_events), "
            "(select count(*) from raw.web_events where file_name like '%part1.jsonl'), "
            "(select count(*) from raw.loads where file_name like '%part1.%'), "
            "(select count(*) from raw.unloads)"
        )
    assert (before - after, lines, loads, unloads) == (600, 0, 0, 2)

    # Plain incremental builds: the first rebuilds the incremental models in full, once.
    assert run_dbt(settings, ["build"], build)
    assert run_dbt(settings, ["build"], build)
    relations = [*INCREMENTAL_MODELS, *marts(settings)]
    after_unload = {relation: model_rows(settings, relation) for relation in relations}
    with connect(settings) as warehouse:
        _, [(gone,)] = warehouse.query(
            "select count(*) from staging.base_web__events where file_name like '%part1.jsonl'"
        )
    assert gone == 0

    assert run_dbt(settings, ["build"], [*build, "--full-refresh"])
    for relation in relations:
        assert model_rows(settings, relation) == after_unload[relation], relation


def test_unloading_an_unknown_or_unloaded_load_is_refused(
    settings: Settings, target: str, tmp_path: Path
):
    t = ("--target", target)
    unknown = CliRunner().invoke(cli, ["unload", "no-such-load", *t])
    assert unknown.exit_code == 1
    assert "No load 'no-such-load' in raw.loads: nothing was removed" in unknown.output

    events = tmp_path / "events.jsonl"
    events.write_text(
        (SAMPLE_DIR / "web_events.jsonl").read_text().splitlines()[0] + "\n", encoding="utf-8"
    )
    load_id = load_id_of(invoke("load", "web-events", str(events), *t))
    invoke("unload", load_id, *t)
    again = CliRunner().invoke(cli, ["unload", load_id, *t])
    assert again.exit_code == 1 and "was already unloaded" in again.output
    # the same file can land again, as a new load
    assert load_id_of(invoke("load", "web-events", str(events), *t)) != load_id

    extract = tmp_path / "store_customers_2017-01-31.csv"
    extract.write_text("ID,Name,City\n1,Ann Lee,Boston\n", encoding="utf-8")
    store_load = load_id_of(invoke("load", "store-customers", str(extract), "--no-snapshot", *t))
    refused = CliRunner().invoke(cli, ["unload", store_load, *t])
    assert refused.exit_code == 1 and "history cannot be taken back" in refused.output
    with connect(settings) as warehouse:
        _, [(rows,)] = warehouse.query("select count(*) from raw.store_customers")
    assert rows == 1


def test_unloading_marketing_data_drops_the_attribution_results_it_held(
    settings: Settings, target: str, tmp_path: Path
):
    """Attribution results of conversions that are gone, or whose journey had a session
    that is gone, would fail the build's tests on the results: they go with the load."""
    t = ("--target", target)
    marketing = SAMPLE_DIR / "marketing"
    conversions = (marketing / "conversions.csv").read_text(encoding="utf-8").splitlines()
    sessions = (marketing / "session_sources.csv").read_text(encoding="utf-8").splitlines()
    folders = []
    for number, part in enumerate((conversions[1:21], conversions[21:41])):
        folder = tmp_path / f"marketing{number}"
        folder.mkdir()
        (folder / "conversions.csv").write_text("\n".join([conversions[0], *part]) + "\n")
        (folder / "session_costs.csv").write_bytes((marketing / "session_costs.csv").read_bytes())
        rows = sessions[1:] if number == 0 else sessions[1:2]  # the second: one session again
        (folder / "session_sources.csv").write_text("\n".join([sessions[0], *rows]) + "\n")
        folders.append(folder)
    kept_session = sessions[2].split(",")[0]
    invoke("load", "marketing", str(folders[0]), *t)
    output = invoke("load", "marketing", str(folders[1]), *t)
    loads = re.findall(r"raw\.(\w+) \(load ([^)]+)\)", output)
    second = {table: load_id for table, load_id in loads}
    kept, gone = conversions[1].split(",")[0], conversions[21].split(",")[0]
    with connect(settings) as warehouse:
        shares = [
            {"conv_id": conv_id, "session_id": kept_session, "ihc": 1.0, "run_id": "run"}
            | {"received_at": datetime.now(timezone.utc).replace(tzinfo=None)}
            for conv_id in (kept, gone)
        ]
        insert_raw_rows(warehouse, "attribution_customer_journey", shares)
    # The sessions landed again hold a session that the first folder holds too: no loss.
    said = invoke("unload", second["session_sources"], *t)
    assert "attribution results" not in said
    said = invoke("unload", second["conversions"], *t)
    assert "The attribution results of 1 conversions" in said and "runner attribute" in said
    with connect(settings) as warehouse:
        _, left = warehouse.query("select conv_id from raw.attribution_customer_journey")
    assert left == [(kept,)]
