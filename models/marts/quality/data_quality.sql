{#- What became of every landed row: per source and load, the rows that are valid
    and the rows quarantined, by reason. The list below is every raw source with
    its staged and quarantine models. -#}
{%- set sources = [
    ('web_events', 'stg_web__events', 'stg_web__events_quarantine'),
    ('store_customers', 'stg_store__customers', 'stg_store__customers_quarantine'),
    ('store_sales', 'stg_store__sales', 'stg_store__sales_quarantine'),
    ('crm_customers', 'stg_crm__customers', 'stg_crm__customers_quarantine'),
    ('crm_interactions', 'stg_crm__interactions', 'stg_crm__interactions_quarantine'),
    ('crm_products', 'stg_crm__products', 'stg_crm__products_quarantine'),
    ('app_sessions', 'stg_app__sessions', 'stg_app__sessions_quarantine'),
    ('app_purchases', 'stg_app__purchases', 'stg_app__purchases_quarantine'),
    ('session_sources', 'stg_marketing__sessions', 'stg_marketing__sessions_quarantine'),
    ('conversions', 'stg_marketing__conversions', 'stg_marketing__conversions_quarantine'),
    ('session_costs', 'stg_marketing__session_costs', 'stg_marketing__session_costs_quarantine'),
] -%}

with

loads as (

    select
        load_id,
        source_table,
        file_name,
        rows_landed,
        loaded_at
    from {{ ref('stg_runner__loads') }}

),

outcomes as (

    {% for source_table, valid, quarantine in sources -%}
        select
            '{{ source_table }}' as source_table,
            load_id,
            'valid' as outcome,
            count(*) as row_count
        from {{ ref(valid) }}
        group by load_id
        union all
        select
            '{{ source_table }}' as source_table,
            load_id,
            reason as outcome,
            count(*) as row_count
        from {{ ref(quarantine) }}
        group by load_id, reason
        {% if not loop.last -%}
            union all
        {% endif -%}
    {%- endfor %}

),

final as (

    select
        cast(outcomes.load_id as {{ dbt.type_string() }}) as load_id,
        cast(outcomes.source_table as {{ dbt.type_string() }}) as source_table,
        cast(loads.file_name as {{ dbt.type_string() }}) as file_name,
        cast(outcomes.outcome as {{ dbt.type_string() }}) as outcome,
        cast(outcomes.row_count as bigint) as row_count,
        cast(loads.rows_landed as bigint) as rows_landed,
        cast(1.0 * outcomes.row_count / nullif(loads.rows_landed, 0) as decimal(9, 6)) as share_of_load,
        outcomes.outcome <> 'valid' as is_quarantined,
        cast(loads.loaded_at as {{ dbt.type_timestamp() }}) as loaded_at
    from outcomes
    inner join loads
        on outcomes.load_id = loads.load_id

)

select * from final
