{#- Every row of every CRM customer export, typed, with the reason it is not used.
    The latest export wins: for each customer the last line of the latest load is
    kept; an earlier identical row is a duplicate_row, an earlier different one is
    superseded. -#}
{{ config(materialized='table') }}

with

source as (

    select
        load_id,
        file_name,
        file_position,
        raw_text,
        parse_error,
        customer_id as customer_id_field,
        occupation,
        type,
        loaded_at
    from {{ source('raw', 'crm_customers') }}

),

cleaned as (

    select
        *,
        nullif(trim(customer_id_field), '') as customer_id_text,
        nullif(trim(occupation), '') as occupation_name,
        nullif(trim(type), '') as customer_type
    from source

),

typed as (

    select
        *,
        case
            when {{ customer_analytics.regexp_like('customer_id_text', '^[0-9]{1,18}$') }}
                then cast(customer_id_text as bigint)
        end as customer_id,
        coalesce(occupation_name, '') || '|' || coalesce(customer_type, '') as line_values
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when customer_id_text is null then 'missing_customer_id'
            when customer_id is null then 'unparseable_customer_id'
        end as row_problem
    from typed

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_id, row_problem
            order by loaded_at desc, load_id desc, file_position desc
        ) as recency,
        first_value(line_values) over (
            partition by customer_id, row_problem
            order by loaded_at desc, load_id desc, file_position desc
        ) as winning_values
    from checked

),

final as (

    select
        load_id,
        file_name,
        file_position,
        customer_id,
        occupation_name as occupation,
        customer_type,
        raw_text,
        case
            when row_problem is not null then row_problem
            when recency > 1 and line_values = winning_values then 'duplicate_row'
            when recency > 1 then 'superseded'
        end as reason,
        case
            when row_problem = 'malformed_line' then parse_error
            when row_problem = 'missing_customer_id' then 'Customer_Id is blank'
            when row_problem = 'unparseable_customer_id'
                then 'Customer_Id is not a whole number: ' || customer_id_text
            when recency > 1 then 'a later row has Customer_Id ' || customer_id_text
        end as reason_detail,
        loaded_at
    from ranked

)

select * from final
