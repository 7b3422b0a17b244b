{#- Every raw web event row, parsed and typed, with the reason it is invalid
    (null when valid). stg_web__events and stg_web__events_quarantine split it,
    so the rules live in one place and every raw row lands in exactly one.
    Incremental: each load is parsed once, when it first lands. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
) }}

with

source as (

    select
        load_id,
        file_name,
        file_position,
        raw_text,
        parse_error,
        loaded_at
    from {{ source('raw', 'web_events') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

parsed as (

    select
        *,
        case
            when parse_error is null then {{ customer_analytics.parse_json('raw_text') }}
        end as payload
    from source

),

extracted as {{ customer_analytics.materialized_cte() }} (

    select
        load_id,
        file_name,
        file_position,
        raw_text,
        parse_error,
        loaded_at,
        {{ customer_analytics.json_type('payload') }} as payload_type,
        upper(trim(payload ->> 'type')) as event_type,
        upper(trim(payload ->> 'verb')) as verb,
        nullif(trim(payload ->> 'key'), '') as entity_key,
        nullif(trim(payload ->> 'event_time'), '') as event_time_text,
        nullif(trim(payload ->> 'customer_id'), '') as customer_id_text,
        nullif(trim(payload ->> 'last_name'), '') as last_name,
        nullif(trim(payload ->> 'adr_city'), '') as adr_city,
        nullif(trim(payload ->> 'adr_state'), '') as adr_state,
        nullif(trim(payload ->> 'camera_make'), '') as camera_make,
        nullif(trim(payload ->> 'camera_model'), '') as camera_model,
        nullif(trim(payload ->> 'total_amount'), '') as total_amount_text,
        cast(payload -> 'tags' as {{ dbt.type_string() }}) as tags_json
    from parsed

),

typed as {{ customer_analytics.materialized_cte() }} (

    select
        *,
        {{ customer_analytics.parse_iso_timestamp('event_time_text') }} as event_at,
        {{ customer_analytics.regexp_extract(
            'total_amount_text', '^(-?[0-9]{1,13}([.][0-9]{1,2})?) *([A-Za-z]{3})$', 1
        ) }} as amount_number_text,
        upper({{ customer_analytics.regexp_extract(
            'total_amount_text', '^-?[0-9]{1,13}([.][0-9]{1,2})? *([A-Za-z]{3})$', 2
        ) }}) as amount_currency,
        case
            when event_type = 'CUSTOMER' then entity_key
            else customer_id_text
        end as customer_id
    from extracted

),

validated as (

    select
        *,
        case
            when parse_error is not null then 'invalid_json'
            when coalesce(payload_type, '') <> 'object' then 'not_an_object'
            when event_type is null then 'missing_type'
            when event_type not in ('CUSTOMER', 'SITE_VISIT', 'IMAGE', 'ORDER') then 'unknown_type'
            when verb is null then 'missing_verb'
            when not (
                (event_type in ('CUSTOMER', 'ORDER') and verb in ('NEW', 'UPDATE'))
                or (event_type = 'SITE_VISIT' and verb = 'NEW')
                or (event_type = 'IMAGE' and verb = 'UPLOAD')
            ) then 'unknown_verb'
            when entity_key is null then 'missing_key'
            when event_time_text is null then 'missing_event_time'
            when event_at is null then 'unparseable_event_time'
            when customer_id is null then 'missing_customer_id'
            when event_type = 'ORDER' and total_amount_text is null then 'missing_total_amount'
            when event_type = 'ORDER' and amount_currency is null then 'unparseable_total_amount'
            when event_type = 'ORDER' and amount_currency <> 'USD' then 'non_usd_total_amount'
        end as reason
    from typed

),

described as (

    select
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
        reason,
        case reason
            when 'invalid_json' then 'not valid JSON: ' || parse_error
            when 'not_an_object' then 'the JSON value is not an object'
            when 'missing_type' then 'no "type"'
            when 'unknown_type' then 'unknown type ' || event_type
            when 'missing_verb' then 'no "verb"'
            when 'unknown_verb' then 'verb ' || verb || ' is not valid for type ' || event_type
            when 'missing_key' then 'no "key"'
            when 'missing_event_time' then 'no "event_time"'
            when 'unparseable_event_time' then 'event_time is not an ISO-8601 date-time: ' || event_time_text
            when 'missing_customer_id' then 'no "customer_id" on a ' || event_type || ' event'
            when 'missing_total_amount' then 'no "total_amount" on an ORDER event'
            when 'unparseable_total_amount' then 'total_amount is not "<number> <currency>": ' || total_amount_text
            when 'non_usd_total_amount' then 'total_amount is not in USD: ' || total_amount_text
        end as reason_detail,
        case
            when reason is null and event_type = 'ORDER'
                then cast(amount_number_text as decimal(18, 2))
        end as total_amount_usd,
        event_at,
        loaded_at
    from validated

),

final as (

    select
        {{ customer_analytics.generate_surrogate_key(['load_id', 'file_position']) }} as event_row_id,
        case when reason is null then {{ customer_analytics.generate_surrogate_key([
            'event_type', 'verb', 'entity_key', 'event_at', 'customer_id',
            'last_name', 'adr_city', 'adr_state', 'camera_make', 'camera_model',
            'total_amount_usd', 'tags_json',
        ]) }} end as event_id,
        *
    from described

)

select * from final
