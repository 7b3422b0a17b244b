{#- Schemas per environment: the dbt side of the one rule whose Python side is
    runner/config.py Settings.schema (python_tests/test_environments.py proves they
    agree, sources included).

    A production target (its name in the var `production_targets` of
    dbt_project.yml: duckdb and postgres) writes the folder's schema exactly: raw,
    staging, intermediate, snapshots, marts. Any other target writes
    `<target.name>_<schema>`: dev_marts for a target `dev`, dev_alice_marts for a
    target `dev_alice`, so a developer's or CI's build never touches production.
    A node without a custom schema (none here) gets the profile's schema.
    Other macros call it with node=none for a layer's schema:
    generate_schema_name('raw', none) is raw, or dev_raw on a target dev. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif customer_analytics.is_production_target() -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ target.name }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}


{#- Whether this target writes the production schemas: its name is in the var
    production_targets (default duckdb and postgres, as runner/config.py
    DEFAULT_PRODUCTION_TARGETS). Grants to the BI role apply only there
    (macros/access.sql). -#}
{% macro is_production_target() -%}
    {{ return(target.name in var('production_targets', ['duckdb', 'postgres'])) }}
{%- endmacro %}
