{#- Every conversion row, typed, with the reason it is not used. A conversion id
    landed again counts once (the first landed row wins). -#}
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
        conv_id as conv_id_field,
        user_id,
        conv_date,
        conv_time,
        revenue,
        loaded_at
    from {{ source('raw', 'conversions') }}
    where {{ customer_analytics.unprocessed_loads() }}

),

cleaned as (

    select
        *,
        nullif(trim(conv_id_field), '') as conv_id,
        nullif(trim(user_id), '') as user_id_text,
        nullif(trim(conv_date), '') as conv_date_text,
        nullif(trim(conv_time), '') as conv_time_text,
        nullif(trim(revenue), '') as revenue_text
    from source

),

typed as {{ customer_analytics.materialized_cte() }} (

    select
        *,
        case
            when
                {{ customer_analytics.regexp_like('conv_date_text', '^[0-9]{4}-[0-9]{2}-[0-9]{2}$') }}
                and {{ customer_analytics.regexp_like('conv_time_text', '^[0-9]{2}:[0-9]{2}:[0-9]{2}$') }}
                then {{ customer_analytics.parse_iso_timestamp("conv_date_text || ' ' || conv_time_text") }}
        end as converted_at,
        case
            when {{ customer_analytics.regexp_like('revenue_text', '^-?[0-9]{1,13}([.][0-9]{1,4})?$') }}
                then cast(revenue_text as decimal(18, 4))
        end as revenue_amount
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when conv_id is null then 'missing_conv_id'
            when user_id_text is null then 'missing_user_id'
            when conv_date_text is null or conv_time_text is null then 'missing_conversion_time'
            when converted_at is null then 'unparseable_conversion_time'
            when revenue_text is null then 'missing_revenue'
            when revenue_amount is null then 'unparseable_revenue'
        end as row_problem
    from typed

),

ranked as (

    {{ customer_analytics.ranked_landings('conv_id') }}

),

final as (

    select
        conv_id,
        load_id,
        file_name,
        file_position,
        user_id_text as user_id,
        revenue_amount as revenue,
        raw_text,
        case
            when row_problem is not null then row_problem
            when occurrence > 1 then 'duplicate_conv_id'
        end as reason,
        case
            when row_problem = 'malformed_line' then parse_error
            when row_problem = 'missing_conv_id' then 'conv_id is blank'
            when row_problem = 'missing_user_id' then 'user_id is blank'
            when row_problem = 'missing_conversion_time' then 'conv_date or conv_time is blank'
            when row_problem = 'unparseable_conversion_time'
                then 'not a YYYY-MM-DD date and HH:MM:SS time: ' || conv_date_text || ' ' || conv_time_text
            when row_problem = 'missing_revenue' then 'revenue is blank'
            when row_problem = 'unparseable_revenue' then 'revenue is not a decimal: ' || revenue_text
            when occurrence > 1 then 'conversion ' || conv_id || ' landed earlier'
        end as reason_detail,
        converted_at,
        loaded_at
    from ranked

)

select * from final
