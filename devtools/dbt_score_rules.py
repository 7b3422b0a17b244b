"""The project's conventions as dbt-score rules (`make lint` runs them on the manifest).

dbt-score loads this module through `rule_namespaces` in pyproject.toml
([tool.dbt-score]), beside its own generic rules. Each rule returns a RuleViolation
that says what is wrong and what to do; `make lint` fails on any violation
(fail_any_item_under = 10). The rules are the ones of /work/shared/conventions.md,
written for the layout of the README's "Conventions checked in CI":

- naming and directories: staging models `stg_<system>__*` in
  models/staging/<system>/, base models `base_<system>__*` in
  models/staging/<system>/base/, intermediate `int_*` in
  models/intermediate/<area>/, marts in models/marts/<area>/; each mart declares its
  kind in `meta.mart_kind` (fact: `fct_`, dimension: `dim_`, reporting: a business
  name without a layer prefix); one source per system, declared in
  models/staging/<system>/_<system>__sources.yml; the YAML of an area's
  intermediate models or marts in its one _<area>__models.yml;
- descriptions: every model, source (and its table), seed, snapshot, macro (not the
  engine variants of a dispatched macro) and every column of a mart;
- a primary-key test on every model: unique + not_null on one column, or the
  project's unique_combination_of_columns;
- public models have enforced contracts (or say why not and carry a shape test);
  what an exposure reads is public; intermediate models are never public;
- freshness on every source table (or `meta.freshness_exempt` saying why);
- only staging models read sources.
"""

from dbt_score import Exposure, Macro, Model, RuleViolation, Snapshot, Source, rule

MART_KINDS = {"fact": "fct_", "dimension": "dim_"}
LAYER_PREFIXES = ("fct_", "dim_", "stg_", "int_", "base_", "rpt_")
DISPATCH_PREFIXES = ("default__", "duckdb__", "postgres__", "spark__")
UNIQUENESS_TESTS = ("unique_combination_of_columns",)
SHAPE_TESTS = ("columns_match_channels",)


def _path_parts(evaluable: Model | Source | Snapshot) -> list[str]:
    return evaluable.original_file_path.split("/")


def _is_mart(model: Model) -> bool:
    return model.original_file_path.startswith("models/marts/")


@rule
def mart_name_matches_its_kind(model: Model) -> RuleViolation | None:
    """A mart declares its kind in meta.mart_kind and is named for it: fact `fct_`,
    dimension `dim_`, reporting a business name with no layer prefix."""
    if not _is_mart(model):
        return None
    kind = model.config.get("meta", {}).get("mart_kind", model.meta.get("mart_kind"))
    if kind is None:
        return RuleViolation(
            "Mart without meta.mart_kind: set it to fact, dimension or reporting in its YAML."
        )
    if kind in MART_KINDS:
        prefix = MART_KINDS[kind]
        if not model.name.startswith(prefix):
            return RuleViolation(f"A {kind} mart's name starts with {prefix}: rename it.")
        return None
    if kind != "reporting":
        return RuleViolation(f"meta.mart_kind is {kind!r}: use fact, dimension or reporting.")
    if model.name.startswith(LAYER_PREFIXES):
        return RuleViolation(
            "A reporting mart has a business name without a layer prefix "
            f"({', '.join(LAYER_PREFIXES)}): rename it, or declare it fact or dimension."
        )
    return None


@rule
def model_in_its_layer_directory(model: Model) -> RuleViolation | None:
    """Each layer in its folder: stg_<system>__* in models/staging/<system>/,
    base_<system>__* in models/staging/<system>/base/, int_* in
    models/intermediate/<area>/, marts in models/marts/<area>/."""
    parts = _path_parts(model)
    name = model.name
    folder = "/".join(parts[:-1])
    for prefix, base in (("stg_", False), ("base_", True)):
        if name.startswith(prefix):
            system = name[len(prefix) :].split("__", 1)[0]
            expected = f"models/staging/{system}" + ("/base" if base else "")
            if "__" not in name:
                return RuleViolation(f"Name it {prefix}<system>__<entity>s.")
            if folder != expected:
                return RuleViolation(f"Move it to {expected}/ (it is in {folder}/).")
            return None
    if name.startswith("int_"):
        if len(parts) != 4 or parts[:2] != ["models", "intermediate"]:
            return RuleViolation(f"Move it to models/intermediate/<area>/ (it is in {folder}/).")
        return None
    if parts[:2] == ["models", "marts"]:
        if len(parts) != 4:
            return RuleViolation(f"Move it to models/marts/<area>/ (it is in {folder}/).")
        return None
    return RuleViolation(
        "No layer: name it stg_/base_ (staging), int_ (intermediate) or put it in "
        "models/marts/<area>/."
    )


@rule
def model_yaml_in_its_area_file(model: Model) -> RuleViolation | None:
    """The YAML of an intermediate model or a mart is its area's one models file:
    models/<layer>/<area>/_<area>__models.yml."""
    parts = _path_parts(model)
    if parts[:2] not in (["models", "intermediate"], ["models", "marts"]) or len(parts) != 4:
        return None
    expected = f"{'/'.join(parts[:3])}/_{parts[2]}__models.yml"
    found = (model.patch_path or "").split("://", 1)[-1]
    if found != expected:
        return RuleViolation(f"Describe it in {expected} (it is in {found or 'no YAML'}).")
    return None


@rule
def source_declared_by_its_system(source: Source) -> RuleViolation | None:
    """One source per system, declared in models/staging/<system>/_<system>__sources.yml."""
    system = source.source_name
    expected = f"models/staging/{system}/_{system}__sources.yml"
    if source.original_file_path != expected:
        return RuleViolation(
            f"Declare source {system!r} in {expected} (it is in {source.original_file_path}); "
            "a source is named for its system (web, store, crm, app, marketing, ihc, runner)."
        )
    return None


@rule
def model_has_a_primary_key_test(model: Model) -> RuleViolation | None:
    """A primary-key test: unique and not_null on one column, or
    unique_combination_of_columns over several."""
    if any(test.type in UNIQUENESS_TESTS for test in model.tests):
        return None
    for column in model.columns:
        types = {test.type for test in column.tests}
        if {"unique", "not_null"} <= types:
            return None
    return RuleViolation(
        "No primary-key test: add unique and not_null to the key column, or "
        "customer_analytics.unique_combination_of_columns for a key of several columns."
    )


@rule
def mart_columns_have_descriptions(model: Model) -> RuleViolation | None:
    """Every column of a mart is documented (and a mart documents its columns)."""
    if not _is_mart(model):
        return None
    if not model.columns:
        return RuleViolation("The mart documents no columns: list them in its YAML.")
    missing = [column.name for column in model.columns if not column.description.strip()]
    if missing:
        return RuleViolation(f"Describe the columns {', '.join(missing)}.")
    return None


@rule
def public_model_has_an_enforced_contract(model: Model) -> RuleViolation | None:
    """A public model has an enforced contract, or says why not in meta.contract_exempt
    and carries a test that holds its shape (columns_match_channels)."""
    if model.access != "public":
        return None
    if model.config.get("contract", {}).get("enforced"):
        return None
    reason = model.config.get("meta", {}).get("contract_exempt")
    if not reason:
        return RuleViolation(
            "Public without an enforced contract: enforce one (contract: {enforced: true}, "
            "data_type on every column), or say why not in meta.contract_exempt."
        )
    if not any(test.type in SHAPE_TESTS for test in model.tests):
        return RuleViolation(
            "meta.contract_exempt needs a test that holds the shape instead "
            f"({', '.join(SHAPE_TESTS)})."
        )
    return None


@rule
def intermediate_model_is_not_public(model: Model) -> RuleViolation | None:
    """Intermediate models are not an interface: protected (or private)."""
    if model.original_file_path.startswith("models/intermediate/") and model.access == "public":
        return RuleViolation("Intermediate models are not public: make it protected.")
    return None


@rule
def exposure_reads_public_models(exposure: Exposure) -> RuleViolation | None:
    """What an exposure reads is public (and so under a contract)."""
    private = sorted(
        parent.name
        for parent in exposure.parents
        if isinstance(parent, Model) and parent.access != "public"
    )
    if private:
        return RuleViolation(f"Make {', '.join(private)} access: public (the exposure reads it).")
    return None


@rule
def only_staging_reads_sources(model: Model) -> RuleViolation | None:
    """Only staging models read sources: marts and intermediate models read staging."""
    sources = [node for node in model.depends_on.get("nodes", []) if node.startswith("source.")]
    if sources and not model.original_file_path.startswith("models/staging/"):
        names = ", ".join(".".join(node.split(".")[-2:]) for node in sources)
        return RuleViolation(f"Reads {names}: give the source a staging model and ref it.")
    return None


@rule
def snapshot_reads_no_source(snapshot: Snapshot) -> RuleViolation | None:
    """Snapshots read a model, never a source directly."""
    if any(node.startswith("source.") for node in snapshot.depends_on.get("nodes", [])):
        return RuleViolation("Snapshot a staging or intermediate model, not a source.")
    return None


@rule
def source_is_described(source: Source) -> RuleViolation | None:
    """A source (the system) and each of its tables are described."""
    if not source.source_description.strip():
        return RuleViolation(f"Describe the source {source.source_name!r} itself.")
    if not source.description.strip():
        return RuleViolation("Describe the table.")
    return None


@rule
def source_has_freshness(source: Source) -> RuleViolation | None:
    """Every source table has a freshness check (its loaded_at_field and warn_after or
    error_after), or meta.freshness_exempt saying why it cannot."""
    raw = source._raw_values
    freshness = raw.get("freshness") or {}
    has_threshold = any(
        (freshness.get(level) or {}).get("count") is not None
        for level in ("warn_after", "error_after")
    )
    config = raw.get("config", {})
    loaded_at = raw.get("loaded_at_field") or config.get("loaded_at_field")
    if has_threshold and (loaded_at or config.get("loaded_at_query")):
        return None
    if source.meta.get("freshness_exempt"):
        return None
    return RuleViolation(
        "No freshness: set loaded_at_field and freshness (warn_after), or say why not in "
        "meta.freshness_exempt."
    )


@rule
def snapshot_is_described(snapshot: Snapshot) -> RuleViolation | None:
    """A snapshot has a description."""
    if not snapshot.description.strip():
        return RuleViolation("Describe the snapshot in its YAML.")
    return None


@rule
def macro_is_described(macro: Macro) -> RuleViolation | None:
    """A macro is described in YAML; the engine variants of a dispatched macro
    (default__, duckdb__, postgres__) are described by the macro that dispatches."""
    if macro.name.startswith(DISPATCH_PREFIXES):
        return None
    if not macro.description.strip():
        return RuleViolation("Describe the macro (and its arguments) in macros/_macros.yml.")
    return None
