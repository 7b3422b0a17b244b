{#- Every raw web event row, parsed and typed, with the reason it is invalid
    (null when valid). stg_web__events and stg_web__events_quarantine split it,
    so the rules live in one place and every raw row lands in exactly one.
    The same event landed again is ranked here like every source's repeats
    (ranked_landings: the first landing wins); a web repeat stays valid, with
    is_first_landing false (see the doc block deduplication).
    Incremental: each load is parsed once, when it first lands. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=customer_analytics.lookup_indexes(['event_id']),
) }}

{%- set problems = [
    ('invalid_json', 'parse_error is not null', "'not valid JSON: ' || parse_error"),
    ('not_an_object', "coalesce(payload_type, '') <> 'object'", "'the JSON value is not an object'"),
    ('missing_type', 'event_type is null', "'no \"type\"'"),
    ('unknown_type', "event_type not in ('CUSTOMER', 'SITE_VISIT', 'IMAGE', 'ORDER')",
        "'unknown type ' || event_type"),
    ('missing_verb', 'verb is null', "'no \"verb\"'"),
    ('unknown_verb', "not ((event_type in ('CUSTOMER', 'ORDER') and verb in ('NEW', 'UPDATE'))"
        ~ " or (event_type = 'SITE_VISIT' and verb = 'NEW') or (event_type = 'IMAGE' and verb = 'UPLOAD'))",
        "'verb ' || verb || ' is not valid for type ' || event_type"),
    ('missing_key', 'entity_key is null', "'no \"key\"'"),
    ('missing_event_time', 'event_time_text is null', "'no \"event_time\"'"),
    ('unparseable_event_time', 'event_at is null',
        "'event_time is not an ISO-8601 date-time: ' || event_time_text"),
    ('missing_customer_id', 'customer_id is null', "'no \"customer_id\" on a ' || event_type || ' event'"),
    ('missing_total_amount', "event_type = 'ORDER' and total_amount_text is null",
        "'no \"total_amount\" on an ORDER event'"),
    ('unparseable_total_amount', "event_type = 'ORDER' and amount_currency is null",
        "'total_amount is not \"<number> <currency>\": ' || total_amount_text"),
    ('non_usd_total_amount', "event_type = 'ORDER' and amount_currency <> 'USD'",
        "'total_amount is not in USD: ' || total_amount_text"),
] %}
{%- set payload_fields = {
    'entity_key': 'key', 'event_time_text': 'event_time', 'customer_id_text': 'customer_id',
    'last_name': 'last_name', 'adr_city': 'adr_city', 'adr_state': 'adr_state',
    'camera_make': 'camera_make', 'camera_model': 'camera_model', 'total_amount_text': 'total_amount',
} %}
{%- set amount = '^(' ~ customer_analytics.numeric_pattern('decimal', 18, 2) ~ ') *([A-Za-z]{3})$' %}

with

landed as (
    {{ customer_analytics.landed_rows(source('web', 'events'), {}) }}
),

parsed as (
    select
        *,
        case
            when parse_error is null then {{ customer_analytics.parse_json('raw_text') }}
        end as payload
    from landed
),

extracted as {{ customer_analytics.materialized_cte() }} (
    select
        {{ customer_analytics.landing_columns() }},
        {{ customer_analytics.json_type('payload') }} as payload_type,
        upper(trim({{ customer_analytics.json_field('payload', 'type') }})) as event_type,
        upper(trim({{ customer_analytics.json_field('payload', 'verb') }})) as verb,
        {%- for name, field in payload_fields.items() %}
            {{ customer_analytics.clean_text(customer_analytics.json_field('payload', field)) }} as {{ name }},
        {%- endfor %}
        {{ customer_analytics.json_fragment('payload', 'tags') }} as tags_json
    from parsed
),

typed as {{ customer_analytics.materialized_cte() }} (
    select
        *,
        {{ customer_analytics.parse_iso_timestamp('event_time_text') }} as event_at,
        {{ customer_analytics.regexp_extract('total_amount_text', amount, 1) }} as amount_number_text,
        upper({{ customer_analytics.regexp_extract('total_amount_text', amount, 3) }}) as amount_currency,
        case
            when event_type = 'CUSTOMER' then entity_key
            else customer_id_text
        end as customer_id
    from extracted
),

checked as (
    select
        *,
        {{ customer_analytics.first_problem(problems, 'web_events') }} as row_problem,
        case
            when event_type = 'ORDER' then cast(amount_number_text as decimal(18, 2))
        end as order_amount_usd
    from typed
),

identified as (
    select
        *,
        case when row_problem is null then {{ customer_analytics.generate_surrogate_key([
            'event_type', 'verb', 'entity_key', 'event_at', 'customer_id',
            'last_name', 'adr_city', 'adr_state', 'camera_make', 'camera_model',
            'order_amount_usd', 'tags_json',
        ]) }} end as event_id
    from checked
),

ranked as (
    {{ customer_analytics.ranked_landings('event_id', relation='identified') }}
),

final as (
    select
        event_id,
        load_id,
        file_name,
        file_position,
        event_type,
        verb,
        entity_key,
        customer_id,
        last_name,
        adr_city,
        adr_state,
        camera_make,
        camera_model,
        tags_json,
        raw_text,
        event_at,
        loaded_at,
        {{ customer_analytics.generate_surrogate_key(['load_id', 'file_position']) }} as event_row_id,
        case when row_problem is null then order_amount_usd end as total_amount_usd,
        row_problem is null and occurrence = 1 as is_first_landing,
        {{ customer_analytics.quarantine_columns(problems, [], 'web_events') }}
    from ranked
)

select * from final
