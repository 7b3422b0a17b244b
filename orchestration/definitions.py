"""The code location: `dagster dev -m orchestration.definitions` (make orchestrate), on
the dbt target of DBT_TARGET (default: the profile's, DuckDB)."""

from __future__ import annotations

from orchestration.assets import build_definitions
from orchestration.project import orchestration_settings

defs = build_definitions(orchestration_settings())
