{#- What became of every landed row: per source and load, the rows that are valid
    and the rows quarantined, by reason. The sources, with their staged and quarantine
    models, are the registry's (runner/sources.py, rendered into the macro raw_sources()
    in macros/create_raw_landing_tables.sql). -#}
{%- set sources = raw_sources() -%}

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

    {% for source in sources -%}
        select
            '{{ source.table }}' as source_table,
            load_id,
            'valid' as outcome,
            count(*) as row_count
        from {{ ref(source.staged) }}
        group by load_id
        union all
        select
            '{{ source.table }}' as source_table,
            load_id,
            reason as outcome,
            count(*) as row_count
        from {{ ref(source.quarantine) }}
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
