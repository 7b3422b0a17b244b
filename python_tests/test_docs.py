"""The dbt docs site (`make docs`): generated from an empty DuckDB warehouse into a
temporary folder, served on a free local port and opened in headless Chromium, which
must show the lineage of the marts (what they read, and the exposures that read them).
The generated manifest and catalog are checked too: every mart is read by an exposure.
The API's own docs pages (`runner serve`: /docs, /redoc) are checked to load only their
own assets, and Swagger UI to draw the operations in Chromium with every other host
unreachable.

Chromium is Debian's /usr/bin/chromium. When it is missing, the tests install it with
apt-get (as root) or are skipped, except with CI=true, where they fail.
Set DOCS_SCREENSHOT_DIR to keep screenshots of the lineage graphs (PNG).
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from python_tests.conftest import PROJECT_DIR

CHROMIUM = Path("/usr/bin/chromium")
DBT = Path(sys.executable).with_name("dbt")
PROJECT = "customer_analytics"
MARTS = {
    "customer_ltv",
    "dim_customers",
    "dim_shops",
    "dim_products",
    "fct_orders",
    "customer_ytd_spend",
    "customer_days_since_last_purchase",
    "customer_channel_interactions",
    "customer_topic_channel_interactions",
    "fct_crm_interactions",
    "dim_crm_channels",
    "dim_crm_customers",
    "customer_engagement",
    "channel_reporting",
}
API_MARTS = {
    "fct_crm_interactions",
    "dim_crm_channels",
    "customer_channel_interactions",
    "dim_crm_customers",
}


def model_id(name: str) -> str:
    return f"model.{PROJECT}.{name}"


def exposure_id(name: str) -> str:
    return f"exposure.{PROJECT}.{name}"


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the docs tests must run, not be skipped)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing and running as root."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        unavailable(f"{CHROMIUM} is missing; install it with: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (
        ["apt-get", *lock_wait, "update", "-qq"],
        ["apt-get", *lock_wait, "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=900, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"cannot install Chromium: {' '.join(command)}: {exc}")
        if done.returncode != 0:
            unavailable(
                f"cannot install Chromium: {' '.join(command)} exited {done.returncode}: "
                f"{done.stderr[-2000:]}"
            )
    if not CHROMIUM.exists():
        unavailable(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


@dataclass(frozen=True)
class DocsSite:
    folder: Path
    url: str
    manifest: dict[str, Any]
    catalog: dict[str, Any]


def dbt(*args: str, env: dict[str, str], folder: Path) -> None:
    command = [
        str(DBT),
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--target",
        "duckdb",
        "--target-path",
        str(folder / "target"),
        "--log-path",
        str(folder / "logs"),
    ]
    done = subprocess.run(
        command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory: pytest.TempPathFactory, profiles_dir: Path) -> Iterator[DocsSite]:
    """`dbt docs generate` against a DuckDB warehouse of its own, served over HTTP.

    The marts and everything upstream are built first (models, seeds and snapshots; no
    tests) from empty raw tables, so the catalog describes real relations."""
    folder = tmp_path_factory.mktemp("docs")
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(profiles_dir),
        "DBT_PROJECT_DIR": str(PROJECT_DIR),
        "DUCKDB_PATH": str(folder / "warehouse.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt(
        "build",
        "--select",
        "+tag:marts",
        "--exclude-resource-type",
        "test",
        "unit_test",
        env=env,
        folder=folder,
    )
    # The build compiled every model already; the site needs no second compile.
    dbt("docs", "generate", "--no-compile", env=env, folder=folder)
    site = folder / "target"
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield DocsSite(
            folder=site,
            url=f"http://127.0.0.1:{server.server_address[1]}/",
            manifest=json.loads((site / "manifest.json").read_text(encoding="utf-8")),
            catalog=json.loads((site / "catalog.json").read_text(encoding="utf-8")),
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_chromium(chromium: Path, workdir: Path, *args: str, timeout: float = 60) -> str:
    """Headless Chromium with a fresh profile; its stdout. The whole process group is
    killed on timeout (Chromium starts helper processes)."""
    profile = workdir / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *args,
    ]
    env = {
        **os.environ,
        "HOME": str(workdir),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        "XDG_CACHE_HOME": str(workdir / "cache"),
    }
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Chromium did not finish within {timeout} s: {' '.join(command)}")
    assert process.returncode == 0, f"Chromium exited {process.returncode}:\n{stderr[-3000:]}"
    return stdout


def without_scripts(dom: str) -> str:
    """The rendered DOM without scripts and styles (the app's templates live in scripts)."""
    return re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)


def page_text(dom: str) -> str:
    """The visible text of a dumped DOM, whitespace collapsed."""
    text = re.sub(r"(?s)<[^>]+>", " ", without_scripts(dom))
    return re.sub(r"\s+", " ", html.unescape(text))


@dataclass(frozen=True)
class References:
    """A rendered 'Depends On' or 'Referenced By' section: its tabs (one per resource
    type) and the unique ids linked from the open tab (the first)."""

    tabs: list[str]
    linked: set[str]


def references(dom: str, heading: str) -> References:
    section = re.search(
        rf"<h6>{heading}</h6>\s*<reference-list\b.*?</reference-list>",
        without_scripts(dom),
        re.DOTALL,
    )
    assert section, f"the page has no rendered '{heading}' section"
    tabs = re.findall(r'ng-click="setType\(resource_type\)"[^>]*>(.*?)</a>', section[0], re.S)
    linked = re.findall(r'href="#!/\w+/([^"]+)"', section[0])
    return References([" ".join(tab.split()) for tab in tabs], set(linked))


def dump_pages(chromium: Path, workdir: Path, urls: dict[str, str]) -> dict[str, str]:
    """The DOM of each page once the app has rendered it, the pages loaded in parallel."""
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        futures = {
            key: pool.submit(run_chromium, chromium, workdir / key, "--dump-dom", url)
            for key, url in urls.items()
        }
        return {key: future.result() for key, future in futures.items()}


def screenshot_lineage(chromium: Path, workdir: Path, site_url: str, name: str) -> None:
    """With DOCS_SCREENSHOT_DIR set, a PNG of the lineage graph of +name+ (the graph is
    drawn on a canvas, so it is seen, not asserted)."""
    folder = os.environ.get("DOCS_SCREENSHOT_DIR")
    if not folder:
        return
    target = Path(folder).resolve() / f"{name}_lineage.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(
        chromium,
        workdir / "screenshot",
        f"--screenshot={target}",
        "--window-size=1400,1000",
        f"{site_url}#!/model/{model_id(name)}?g_v=1&g_i=%2B{name}%2B",
    )
    assert target.stat().st_size > 0


@pytest.mark.parametrize(
    ("name", "parent_models", "source", "exposure", "typed_column"),
    [
        pytest.param(
            "channel_reporting",
            {
                "stg_marketing__sessions",
                "stg_marketing__session_costs",
                "stg_marketing__conversions",
                "stg_ihc__attribution_results",
            },
            None,
            "channel_performance_dashboard",
            "roas DECIMAL(18,4)",
            id="channel_reporting",
        ),
        pytest.param(
            "customer_ltv",
            {"int_web_events_deduplicated", "fct_orders"},
            None,
            "customer_value_dashboard",
            "ltv DECIMAL(18,2)",
            id="customer_ltv",
        ),
    ],
)
def test_docs_site_shows_the_lineage_in_chromium(
    docs_site: DocsSite,
    chromium: Path,
    tmp_path: Path,
    name: str,
    parent_models: set[str],
    source: str | None,
    exposure: str,
    typed_column: str,
):
    """The model's page lists its parents and has exposures among what references it;
    the exposure's page lists the model; the source's page lists the model."""
    urls = {
        "model": f"{docs_site.url}#!/model/{model_id(name)}",
        "exposure": f"{docs_site.url}#!/exposure/{exposure_id(exposure)}",
    }
    if source:
        urls["source"] = f"{docs_site.url}#!/source/source.{PROJECT}.{source}"
    pages = dump_pages(chromium, tmp_path, urls)

    # The single-page app loaded manifest.json (the model, its SQL) and catalog.json (the
    # relation and its column types) and rendered the model's page.
    model_text = page_text(pages["model"])
    assert f"{name} table" in model_text, model_text[-3000:]
    assert re.search(rf"\.marts\.{name}\b", model_text), "no relation: the catalog did not load"
    assert typed_column in model_text, "no column types: the catalog did not load"

    depends_on = references(pages["model"], "Depends On")
    assert depends_on.tabs[0] == "Models", depends_on
    assert depends_on.linked == {model_id(parent) for parent in parent_models}
    referenced_by = references(pages["model"], "Referenced By")
    assert "Exposures" in referenced_by.tabs, referenced_by

    exposure_text = page_text(pages["exposure"])
    assert f"Exposure name {exposure}" in exposure_text, exposure_text[-3000:]
    assert "analytics@example.com" in exposure_text
    assert model_id(name) in references(pages["exposure"], "Depends On").linked

    if source:
        assert f"{source} source table" in page_text(pages["source"])
        assert model_id(name) in references(pages["source"], "Referenced By").linked

    screenshot_lineage(chromium, tmp_path, docs_site.url, name)


def test_manifest_lineage_of_channel_reporting_and_customer_ltv(docs_site: DocsSite):
    parents = docs_site.manifest["parent_map"]
    assert {
        model_id("stg_ihc__attribution_results"),
        model_id("stg_marketing__sessions"),
        model_id("stg_marketing__session_costs"),
        model_id("stg_marketing__conversions"),
    } <= set(parents[model_id("channel_reporting")])
    assert parents[model_id("stg_ihc__attribution_results")] == [
        f"source.{PROJECT}.ihc.customer_journey"
    ]
    assert set(parents[model_id("customer_ltv")]) == {
        model_id("int_web_events_deduplicated"),
        model_id("fct_orders"),
    }
    children = docs_site.manifest["child_map"]
    assert exposure_id("channel_performance_dashboard") in children[model_id("channel_reporting")]
    assert exposure_id("customer_value_dashboard") in children[model_id("customer_ltv")]


def test_every_mart_is_read_by_an_exposure(docs_site: DocsSite):
    nodes = docs_site.manifest["nodes"]
    marts = {
        node["name"]
        for node in nodes.values()
        if node["resource_type"] == "model"
        and node["package_name"] == PROJECT
        and node["original_file_path"].startswith("models/marts/")
    }
    assert marts >= MARTS, f"marts missing from the manifest: {MARTS - marts}"

    exposures = docs_site.manifest["exposures"]
    read = {
        parent.removeprefix(f"model.{PROJECT}.")
        for exposure in exposures.values()
        for parent in exposure["depends_on"]["nodes"]
    }
    assert not marts - read, f"marts no exposure reads: {sorted(marts - read)}"

    for exposure in exposures.values():
        assert exposure["description"].strip(), exposure["name"]
        assert exposure["owner"]["name"] and exposure["owner"]["email"], exposure["name"]
        assert exposure["maturity"] in {"low", "medium", "high"}, exposure["name"]
        assert exposure["url"].startswith("http"), exposure["name"]
    dashboards = [e for e in exposures.values() if e["type"] == "dashboard"]
    assert {
        parent.removeprefix(f"model.{PROJECT}.")
        for exposure in dashboards
        for parent in exposure["depends_on"]["nodes"]
    } >= marts, "every mart is on a BI dashboard"

    api = exposures[exposure_id("interactions_api")]
    assert api["type"] == "application"
    assert set(api["depends_on"]["nodes"]) == {model_id(name) for name in API_MARTS}


def test_catalog_describes_the_marts_and_the_attribution_source(docs_site: DocsSite):
    catalog_nodes = docs_site.catalog["nodes"]
    for name in MARTS:
        assert model_id(name) in catalog_nodes, f"{name} is not in the catalog"
    assert "ltv" in {c.lower() for c in catalog_nodes[model_id("customer_ltv")]["columns"]}
    assert "roas" in {c.lower() for c in catalog_nodes[model_id("channel_reporting")]["columns"]}
    assert f"source.{PROJECT}.ihc.customer_journey" in docs_site.catalog["sources"]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`runner serve`'s app on a free local port (the docs pages never touch the warehouse)."""
    import socket

    import uvicorn

    from python_tests.conftest import API_KEYS
    from runner.api import create_app
    from runner.config import load_settings

    settings = load_settings(target="duckdb")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, API_KEYS), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    for _ in range(100):  # the server thread may still be starting
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, answer.read().decode("utf-8", "replace")
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
            threading.Event().wait(0.1)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_pages_load_only_local_assets(api_url: str, page: str):
    """The API's docs pages name no other host: every script, style and icon they load
    is served by the API itself, and answers."""
    status, body = get(api_url + page)
    assert status == 200
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", body)
    assert any(asset.endswith(".js") for asset in assets), body
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        assert get(api_url + asset)[0] == 200, asset
    assert "https://" not in body and "http://" not in body


def test_api_docs_page_renders_offline_in_chromium(api_url: str, chromium: Path, tmp_path: Path):
    """Swagger UI draws the API's operations with every other host unreachable."""
    dom = run_chromium(
        chromium,
        tmp_path,
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--dump-dom",
        f"{api_url}/docs",
    )
    assert re.search(
        r'opblock-summary-path[^>]*data-path="/api/v1/interactions/\{customer_id\}"', dom
    ), dom[-3000:]
    assert "/health" in page_text(dom)
