{#- Every session cost row, typed, with the reason it is not used. A blank cost is
    valid (unknown: it counts 0 in reporting). A session's cost landed again counts
    once (the first landed row wins). -#}
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
        session_id as session_id_field,
        cost,
        loaded_at
    from {{ source('raw', 'session_costs') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(session_id_field), '') as session_id,
        nullif(trim(cost), '') as cost_text
    from source

),

typed as (

    select
        *,
        case
            when {{ customer_analytics.regexp_like('cost_text', '^[0-9]{1,12}([.][0-9]{1,6})?$') }}
                then cast(cost_text as decimal(18, 6))
        end as cost_amount
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when session_id is null then 'missing_session_id'
            when cost_text is not null and cost_amount is null then 'unparseable_cost'
        end as row_problem
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
        cost_amount as cost,
        raw_text,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 then 'duplicate_session_id'
        end as reason,
        case
            when row_problem = 'malformed_line' then parse_error
            when row_problem = 'missing_session_id' then 'session_id is blank'
            when row_problem = 'unparseable_cost' then 'cost is not a non-negative decimal: ' || cost_text
            when occurrence > 1 then 'a cost for session ' || session_id || ' landed earlier'
        end as reason_detail,
        loaded_at
    from ranked

)

select * from final
