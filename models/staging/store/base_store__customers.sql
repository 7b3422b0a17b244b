{#- Every row of every store customer extract, typed, with the reason it cannot be
    used (null when valid). Split by stg_store__customers and
    stg_store__customers_quarantine, so every raw row lands in exactly one. -#}
{{ config(materialized='table') }}

with

source as (

    select
        load_id,
        file_name,
        file_position,
        extract_date,
        raw_text,
        parse_error,
        id,
        name,
        city,
        loaded_at
    from {{ source('raw', 'store_customers') }}

),

cleaned as (

    select
        *,
        nullif(trim(id), '') as id_text,
        nullif(trim(name), '') as customer_name,
        nullif(trim(city), '') as city_name
    from source

),

typed as (

    select
        *,
        case
            when {{ customer_analytics.regexp_like('id_text', '^[0-9]{1,18}$') }}
                then cast(id_text as bigint)
        end as customer_id
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when id_text is null then 'missing_id'
            when customer_id is null then 'unparseable_id'
        end as row_problem,
        coalesce(customer_name, '') || '|' || coalesce(city_name, '') as line_values
    from typed

),

ranked as (

    select
        *,
        -- Within one extract the last line for an id wins; an exact repeat of it
        -- is a duplicate, a different line for the same id is superseded.
        row_number() over (
            partition by load_id, customer_id, row_problem
            order by file_position desc
        ) as line_recency,
        first_value(line_values) over (
            partition by load_id, customer_id, row_problem
            order by file_position desc
        ) as winning_values
    from checked

),

final as (

    select
        load_id,
        file_name,
        file_position,
        extract_date,
        customer_id,
        customer_name,
        city_name as city,
        raw_text,
        case
            when row_problem is not null then row_problem
            when line_recency > 1 and line_values = winning_values then 'duplicate_row'
            when line_recency > 1 then 'superseded_in_extract'
        end as reason,
        case
            when row_problem = 'malformed_line' then parse_error
            when row_problem = 'missing_id' then 'ID is blank'
            when row_problem = 'unparseable_id' then 'ID is not a whole number: ' || id_text
            when line_recency > 1 then 'a later line of the same extract has ID ' || id_text
        end as reason_detail,
        loaded_at
    from ranked

)

select * from final
