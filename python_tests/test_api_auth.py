"""API keys: every route but /health needs `Authorization: Bearer <key>`; the keys come
from RUNNER_API_KEYS or a file of their sha256 hashes (`runner serve --keys-file`);
`runner serve` refuses to start without any key unless --no-auth; keys are never logged.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from fastapi import APIRouter

from python_tests.conftest import API_KEY, API_KEYS
from python_tests.processes import (
    finish,
    no_process_left_behind,  # noqa: F401 (an autouse fixture)
    runner_command,
    start,
    wait_for,
)
from python_tests.test_interactions import assert_error, create_marts, get, served_api, served_app
from runner.api import create_app
from runner.auth import ApiKeys, configured_keys, digests_from_file, hash_key
from runner.cli import cli
from runner.config import Settings, load_settings
from runner.errors import RunnerError
from runner.serving import publish

DATA_ROUTES = [
    "/api/v1/interactions/101",
    "/api/v1/interactions",
    "/api/v1/customers",
    "/api/v1/channels",
]


@pytest.fixture
def marts(settings: Settings) -> Settings:
    create_marts(settings)
    publish(settings)
    return settings


def test_every_route_but_health_needs_a_key(marts: Settings):
    with served_api(marts) as base:
        for path in DATA_ROUTES:
            missing = get(f"{base}{path}", headers=None)
            assert "Bearer" in assert_error(missing, 401, "unauthorized")
            assert missing.headers["www-authenticate"] == "Bearer"
            other_scheme = get(f"{base}{path}", headers={"Authorization": f"Basic {API_KEY}"})
            assert_error(other_scheme, 401, "unauthorized")
            wrong = get(f"{base}{path}", headers={"Authorization": "Bearer not-the-key"})
            assert "not accepted" in assert_error(wrong, 403, "forbidden")
            near = get(f"{base}{path}", headers={"Authorization": f"Bearer {API_KEY}x"})
            assert_error(near, 403, "forbidden")
            assert get(f"{base}{path}").status_code == 200  # with AUTH
        # A bad parameter without a key: the key is checked first.
        assert get(f"{base}/api/v1/customers?limit=0", headers=None).status_code == 401
        assert requests.get(f"{base}/health", timeout=10).json() == {"status": "ok"}
        # The docs describe the API and hold no data: public.
        assert requests.get(f"{base}/openapi.json", timeout=10).status_code == 200
        assert requests.get(f"{base}/docs", timeout=10).status_code == 200


def test_any_of_several_keys_is_accepted(marts: Settings):
    keys = ApiKeys.of(["first-key", "second-key"])
    with served_api(marts, keys) as base:
        for key in ("first-key", "second-key"):
            headers = {"Authorization": f"Bearer {key}"}
            assert get(f"{base}/api/v1/channels", headers=headers).status_code == 200
        assert_error(get(f"{base}/api/v1/channels"), 403, "forbidden")  # the tests' key


def test_routes_added_later_need_a_key_too(api_session: requests.Session):
    """A router another module includes in the app is protected without doing anything
    (the intake routes are, too); /health stays open."""
    app = create_app(load_settings(target="duckdb"), API_KEYS)
    router = APIRouter()

    @router.post("/api/v1/later")
    def later() -> dict[str, str]:
        return {"status": "stored"}

    app.include_router(router)
    with served_app(app) as base:
        for intake in ("/api/v1/app/sessions", "/api/v1/app/purchases"):
            assert_error(requests.post(f"{base}{intake}", json=[], timeout=10), 401, "unauthorized")
        url = f"{base}/api/v1/later"
        assert_error(requests.post(url, timeout=10), 401, "unauthorized")
        assert_error(
            requests.post(url, headers={"Authorization": "Bearer x"}, timeout=10), 403, "forbidden"
        )
        assert api_session.post(url, timeout=10).json() == {"status": "stored"}
        assert requests.get(f"{base}/health", timeout=10).status_code == 200


def test_no_auth_app_needs_no_key(marts: Settings):
    with served_api(marts, keys=None) as base:
        for path in DATA_ROUTES:
            assert get(f"{base}{path}", headers=None).status_code == 200


# --- where the keys come from ------------------------------------------------------------


def test_keys_from_the_environment():
    keys = configured_keys({"RUNNER_API_KEYS": " one-key, two-key ,,"}, None)
    assert keys is not None and len(keys) == 2
    assert keys.accepts("one-key") and keys.accepts("two-key")
    assert not keys.accepts(" one-key") and not keys.accepts("one-key, two-key")
    assert configured_keys({}, None) is None
    with pytest.raises(RunnerError, match="RUNNER_API_KEYS is set but holds no key"):
        configured_keys({"RUNNER_API_KEYS": " , "}, None)
    with pytest.raises(RunnerError, match="Key number 2 in RUNNER_API_KEYS"):
        configured_keys({"RUNNER_API_KEYS": "fine,clé"}, None)


def test_keys_file_of_hashes(tmp_path: Path):
    path = tmp_path / "api-keys.txt"
    path.write_text(
        "# who has which key\n"
        f"{hash_key('alice-key')}  alice\n"
        "\n"
        f"   {hash_key('bob-key').upper()}\n"
        f"{hashlib.sha256(b'carol-key').hexdigest()}  -\n",  # as `sha256sum` writes it
        encoding="utf-8",
    )
    keys = configured_keys({"RUNNER_API_KEYS": "dave-key"}, path)
    assert keys is not None and len(keys) == 4  # the file's and the environment's
    assert all(keys.accepts(k) for k in ("alice-key", "bob-key", "carol-key", "dave-key"))
    assert not keys.accepts(hash_key("alice-key"))  # the hash is not a key
    assert digests_from_file(path) == ApiKeys.of(["alice-key", "bob-key", "carol-key"]).digests


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice-key\n", r"line 1: expected the sha256 hash of a key"),
        (f"# ok\n{hash_key('a')}\n{hash_key('a')[:-1]}\n", r"line 3: expected the sha256"),
        ("# nothing but comments\n\n", r"holds no key hash"),
    ],
)
def test_bad_keys_file_is_refused(tmp_path: Path, text: str, message: str):
    path = tmp_path / "api-keys.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RunnerError, match=message) as raised:
        configured_keys({}, path)
    assert "alice-key" not in raised.value.message  # a key written there is not echoed


def test_hash_key_command():
    result = CliRunner().invoke(cli, ["hash-key"], input="my-secret-key\n")
    assert result.exit_code == 0, result.output
    assert result.output == hashlib.sha256(b"my-secret-key").hexdigest() + "\n"
    refused = CliRunner().invoke(cli, ["hash-key"], input="\n")
    assert refused.exit_code == 1 and "standard input" in refused.output


# --- `runner serve` ----------------------------------------------------------------------


def serve(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str):
    """`runner serve ARGS` up to where uvicorn would start; the result and what uvicorn
    was given."""
    given: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: given.append(app))
    monkeypatch.delenv("RUNNER_API_KEYS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, ["serve", "--target", "duckdb", *args]), given


def test_serve_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch):
    result, given = serve(monkeypatch)
    assert result.exit_code == 1 and given == []
    for named in ("RUNNER_API_KEYS", "--keys-file", "--no-auth"):
        assert named in result.output


def test_serve_no_auth_warns_that_the_api_is_open(monkeypatch: pytest.MonkeyPatch):
    result, given = serve(monkeypatch, "--no-auth")
    assert result.exit_code == 0, result.output
    assert "Warning: --no-auth: the API on 127.0.0.1:8000 answers anyone" in result.output
    assert len(given) == 1
    refused, _ = serve(monkeypatch, "--no-auth", RUNNER_API_KEYS=API_KEY)
    assert refused.exit_code == 1 and "Drop --no-auth" in refused.output


def test_serve_with_keys_says_how_many_and_never_which(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    path = tmp_path / "keys.txt"
    path.write_text(hash_key("file-key") + "\n", encoding="utf-8")
    result, given = serve(monkeypatch, "--keys-file", str(path), RUNNER_API_KEYS="env-key")
    assert result.exit_code == 0, result.output
    assert len(given) == 1
    assert "accepts 2 key(s)" in result.output
    assert "env-key" not in result.output and hash_key("file-key") not in result.output
    missing, _ = serve(monkeypatch, "--keys-file", str(tmp_path / "none.txt"))
    assert missing.exit_code == 2  # click: the file does not exist


def test_keys_never_appear_in_the_servers_output(tmp_path: Path):
    """A real `runner serve` (uvicorn's access log at info level): neither a wrong key
    nor the right ones appear in what it prints, whatever the answers."""
    settings = load_settings(target="duckdb")
    create_marts(settings)
    publish(settings)
    env_key, file_key, wrong_key = "env-key-7f3a9c", "file-key-51b2e8", "wrong-key-c0ffee42"
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(hash_key(file_key) + "  ops\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    command = runner_command("serve", "--port", str(port), "--keys-file", str(keys_file))
    server = start(command, RUNNER_API_KEYS=env_key)

    def healthy() -> bool:
        try:
            return requests.get(f"{base}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(healthy, "runner serve answers /health", server)
    statuses = []
    for key in (env_key, file_key, wrong_key, None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for path in ("/api/v1/interactions/101", "/api/v1/interactions/999", "/nowhere"):
            statuses.append(requests.get(f"{base}{path}", headers=headers, timeout=10).status_code)
    assert statuses == [200, 404, 404, 200, 404, 404, 403, 403, 404, 401, 401, 404]
    server.terminate()
    result = finish(server)
    output = result.stdout + result.stderr
    assert '"GET /api/v1/interactions/101 HTTP/1.1" 403' in output  # the access log runs
    for secret in (env_key, file_key, wrong_key, hash_key(file_key)):
        assert secret not in output
