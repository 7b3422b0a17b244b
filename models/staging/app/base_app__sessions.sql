{#- Every app session row (from CSV or JSON Lines), typed, with the reason it is
    not used. A time without a zone is UTC. The same session (customer, start)
    landed twice counts once. -#}
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
        customer_id as customer_id_field,
        session_started_at as started_at_field,
        loaded_at
    from {{ source('raw', 'app_sessions') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(customer_id_field), '') as customer_id,
        nullif(trim(started_at_field), '') as started_at_text
    from source

),

typed as {{ customer_analytics.materialized_cte() }} (

    select
        *,
        {{ customer_analytics.parse_iso_timestamp('started_at_text') }} as session_started_at
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when customer_id is null then 'missing_customer_id'
            when started_at_text is null then 'missing_session_started_at'
            when session_started_at is null then 'unparseable_session_started_at'
        end as row_problem,
        {{ customer_analytics.generate_surrogate_key(['customer_id', 'session_started_at']) }} as session_id
    from typed

),

ranked as (

    {{ customer_analytics.ranked_landings('session_id') }}

),

final as (

    select
        session_id,
        load_id,
        file_name,
        file_position,
        customer_id,
        raw_text,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 then 'duplicate_row'
        end as reason,
        case row_problem
            when 'malformed_line' then parse_error
            when 'missing_customer_id' then 'customer_id is blank'
            when 'missing_session_started_at' then 'session_started_at is blank'
            when 'unparseable_session_started_at'
                then 'session_started_at is not an ISO-8601 date-time: ' || started_at_text
            else case when occurrence > 1 then 'the same session landed earlier' end
        end as reason_detail,
        session_started_at,
        loaded_at
    from ranked

)

select * from final
