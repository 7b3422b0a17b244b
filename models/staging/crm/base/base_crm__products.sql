{#- Every row of every "products of discussion" export, typed, with the reason it
    is not used. The month is MM-YYYY. One product per month: the latest load's last
    line for a month wins; an earlier identical row is a duplicate_row, an earlier
    different one is superseded. -#}
{{ config(materialized='table') }}

{%- set problems = [
    ('malformed_line', 'parse_error is not null', 'parse_error'),
    ('missing_month', 'month_text is null', "'date is blank'"),
    ('unparseable_month', 'month_start is null', "'date is not MM-YYYY: ' || month_text"),
    ('missing_product', 'product is null', "'product is blank'"),
] %}
{%- set repeats = [
    ('duplicate_row', 'recency > 1 and product = winning_values',
        "'a later row names the product of ' || month_text"),
    ('superseded', 'recency > 1', "'a later row names the product of ' || month_text"),
] %}

with

landed as ({{ customer_analytics.landed_rows(source('crm', 'products'), {
    'month_text': 'date', 'product': 'product',
}, incremental=false) }}),

typed as (
    select
        *,
        case
            when {{ customer_analytics.regexp_like('month_text', '^(0[1-9]|1[0-2])-[0-9]{4}$') }}
                then cast(substr(month_text, 4, 4) || '-' || substr(month_text, 1, 2) || '-01' as date)
        end as month_start
    from landed
),

checked as ({{ customer_analytics.checked_rows(problems, 'crm_products') }}),

ranked as ({{ customer_analytics.ranked_latest(['month_start'], 'product') }}),

final as ({{ customer_analytics.base_final(['product', 'month_start'], problems, repeats, 'crm_products') }})

select * from final
