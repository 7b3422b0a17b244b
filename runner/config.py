"""One configuration: the runner reads the same dbt project, profile and target as dbt.

The profile is rendered by dbt's own renderer, so `env_var(...)` defaults, targets and
credentials mean exactly what they mean to `dbt build`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import RunnerError

PROFILE_NAME = "customer_analytics"
PROJECT_FILE = "dbt_project.yml"


@dataclass(frozen=True)
class Settings:
    """Where the project is, which profile file and target to use, and the credentials."""

    project_dir: Path
    profiles_dir: Path
    target: str
    credentials: Any  # the adapter's credentials object (DuckDBCredentials, PostgresCredentials)

    @property
    def adapter_type(self) -> str:
        return self.credentials.type

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file, a relative path taken from the project folder."""
        path = Path(self.credentials.path)
        return path if path.is_absolute() else self.project_dir / path


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
    if not hasattr(get_flags(), "LOG_CACHE_EVENTS"):
        set_from_args(argparse.Namespace(), None)


def load_settings(
    target: str | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve project, profile and target (None: the profile's default target)."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.exceptions import DbtProfileError

    project = find_project_dir(project_dir)
    profiles = find_profiles_dir(project, profiles_dir)
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
    return Settings(
        project_dir=project,
        profiles_dir=profiles,
        target=profile.target_name,
        credentials=profile.credentials,
    )
