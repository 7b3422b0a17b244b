{#- Every row of every "products of discussion" export, typed, with the reason it
    is not used. The month is MM-YYYY. One product per month: the latest load's last
    line for a month wins; an earlier identical row is a duplicate_row, an earlier
    different one is superseded. -#}
{{ config(materialized='table') }}

with

source as (

    select
        load_id,
        file_name,
        file_position,
        raw_text,
        parse_error,
        date,
        product,
        loaded_at
    from {{ source('raw', 'crm_products') }}

),

cleaned as (

    select
        *,
        nullif(trim(date), '') as month_text,
        nullif(trim(product), '') as product_name
    from source

),

typed as (

    select
        *,
        case
            when
                {{ customer_analytics.regexp_like('month_text', '^(0[1-9]|1[0-2])-[0-9]{4}$') }}
                then cast(substr(month_text, 4, 4) || '-' || substr(month_text, 1, 2) || '-01' as date)
        end as month_start
    from cleaned

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'malformed_line'
            when month_text is null then 'missing_month'
            when month_start is null then 'unparseable_month'
            when product_name is null then 'missing_product'
        end as row_problem
    from typed

),

ranked as (

    select
        *,
        row_number() over (
            partition by month_start, row_problem
            order by loaded_at desc, load_id desc, file_position desc
        ) as recency,
        first_value(product_name) over (
            partition by month_start, row_problem
            order by loaded_at desc, load_id desc, file_position desc
        ) as winning_product
    from checked

),

final as (

    select
        load_id,
        file_name,
        file_position,
        product_name as product,
        raw_text,
        case
            when row_problem is not null then row_problem
            when recency > 1 and product_name = winning_product then 'duplicate_row'
            when recency > 1 then 'superseded'
        end as reason,
        case
            when row_problem = 'malformed_line' then parse_error
            when row_problem = 'missing_month' then 'date is blank'
            when row_problem = 'unparseable_month' then 'date is not MM-YYYY: ' || month_text
            when row_problem = 'missing_product' then 'product is blank'
            when recency > 1 then 'a later row names the product of ' || month_text
        end as reason_detail,
        month_start,
        loaded_at
    from ranked

)

select * from final
