{#- Every session cost row, typed, with the reason it is not used. A blank cost is
    valid (unknown: it counts 0 in reporting); a cost is a non-negative
    decimal(18, 6). A session's cost landed again counts once (the first landed
    row wins). -#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_session_id', 'session_id is null', "'session_id is blank'"),
    ('unparseable_cost', 'cost_text is not null and cost is null',
        "'cost is not a non-negative decimal: ' || cost_text"),
] %}
{%- set repeats = [
    ('duplicate_session_id', 'occurrence > 1', "'a cost for session ' || session_id || ' landed earlier'"),
] %}
{%- set fields = {
    'session_id': 'session_id', 'cost_text': 'cost',
} %}
{%- set typed = {
    'cost': customer_analytics.guarded_cast('cost_text', 'decimal', precision=18, scale=6, signed=false),
} %}
{%- set columns = ['session_id', 'cost'] %}

{{ customer_analytics.base_model(
    source('marketing', 'session_costs'), 'session_costs', fields=fields, typed=typed,
    columns=columns, problems=problems, repeats=repeats, first_landed='session_id',
    materialize_typed=false
) }}
