"""API keys for `runner serve`: which keys the API accepts, and the check on every request.

Keys come from the environment variable RUNNER_API_KEYS (the keys themselves, separated
by commas) and/or a keys file (`runner serve --keys-file F`) holding only their sha256
hashes, so the file is no secret. The API keeps only the hashes, and compares the hash
of the key a request presents with each of them in constant time (hmac.compare_digest).

A keys file has one hash a line: 64 hex digits, optionally followed by spaces and a
label (so `sha256sum` output works as it is); blank lines and lines starting with `#`
are ignored. `runner hash-key` prints the hash of a key read on standard input.

Clients send `Authorization: Bearer <key>`. No header (or another scheme): 401; a key
that is not accepted: 403. Neither the keys nor the header are ever logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from runner.errors import RunnerError

KEYS_ENV = "RUNNER_API_KEYS"
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
KEY_TEXT = re.compile(r"[!-~]+")  # printable ASCII, no spaces: what a header carries as is

bearer = HTTPBearer(
    auto_error=False,  # our own 401/403 answers, in the API's JSON error shape
    scheme_name="ApiKey",
    description=(
        "An API key of this server, sent as `Authorization: Bearer <key>`. The server is "
        "given the keys in RUNNER_API_KEYS or the sha256 hashes in `--keys-file`."
    ),
)


def hash_key(key: str) -> str:
    """The sha256 of a key, as hex: what a keys file holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    """The keys the API accepts, as their sha256 digests."""

    digests: frozenset[bytes]

    @classmethod
    def of(cls, keys: Iterable[str]) -> ApiKeys:
        return cls(frozenset(bytes.fromhex(hash_key(key)) for key in keys))

    def __len__(self) -> int:
        return len(self.digests)

    def accepts(self, key: str) -> bool:
        """Whether `key` is one of the keys, comparing digests in constant time (every
        digest is compared, whichever matches)."""
        # Starlette decodes header bytes as latin-1: the same bytes again.
        presented = hashlib.sha256(key.encode("latin-1", errors="replace")).digest()
        found = False
        for digest in self.digests:
            found |= hmac.compare_digest(presented, digest)
        return found


def keys_from_environment(environ: Mapping[str, str]) -> list[str]:
    """The keys in RUNNER_API_KEYS (comma-separated, spaces around them ignored)."""
    value = environ.get(KEYS_ENV)
    if value is None:
        return []
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise RunnerError(
            f"{KEYS_ENV} is set but holds no key. Give it keys separated by commas, or unset it."
        )
    for number, key in enumerate(keys, start=1):
        if not KEY_TEXT.fullmatch(key):
            raise RunnerError(
                f"Key number {number} in {KEYS_ENV} has a character other than printable "
                "ASCII (letters, digits, punctuation). Use such keys only, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
    return keys


def digests_from_file(path: Path) -> frozenset[bytes]:
    """The sha256 digests of a keys file (format: the module's docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunnerError(f"Could not read the keys file {path}: {exc}.") from None
    digests = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        first = stripped.split()[0]
        if not HEX_DIGEST.fullmatch(first):
            raise RunnerError(
                f"{path}, line {number}: expected the sha256 hash of a key (64 hex digits, "
                "then optionally a label), not a key or other text. Make one with "
                "`runner hash-key` (it reads the key on standard input)."
            )
        digests.add(bytes.fromhex(first))
    if not digests:
        raise RunnerError(
            f"The keys file {path} holds no key hash. Add one a line (`runner hash-key`)."
        )
    return frozenset(digests)


def configured_keys(environ: Mapping[str, str], keys_file: Path | None) -> ApiKeys | None:
    """The keys of RUNNER_API_KEYS and of the keys file together; None when neither
    gives any."""
    keys = ApiKeys.of(keys_from_environment(environ))
    if keys_file is not None:
        keys = ApiKeys(keys.digests | digests_from_file(keys_file))
    return keys if keys.digests else None


NO_KEY = "This API needs a key: send the header `Authorization: Bearer <key>`."
WRONG_KEY = "This API key is not accepted. Ask the server's operator for a valid key."


def key_check(keys: ApiKeys) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that lets a request through only with one of `keys` (async: it
    never waits, so it runs on the event loop instead of a hop to the thread pool)."""

    async def require_api_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None:
            raise HTTPException(401, NO_KEY, headers={"WWW-Authenticate": "Bearer"})
        if not keys.accepts(credentials.credentials):
            raise HTTPException(403, WRONG_KEY)

    return require_api_key
