{#- Taking a load back (`runner unload LOAD_ID`). The runner deletes the load's raw
    rows and its raw.loads line, and records it in raw.unloads. Incremental models
    only append what new loads bring, so they would keep what the load built (and
    rows a later load repeated would stay marked as repeats): after an unload, each
    incremental model is rebuilt in full once, at the next build, whatever starts it
    (`runner build` or plain `dbt build`). raw.unload_rebuilds remembers which models
    were rebuilt since which unload (written by the on-run-end hook). -#}

{#- dbt's should_full_refresh (which both is_incremental() and the incremental
    materializations ask), plus: an incremental model not rebuilt since an unload
    is rebuilt in full. A model configured full_refresh: false keeps its rows. -#}
{% macro should_full_refresh() %}
    {%- set config_full_refresh = config.get('full_refresh') -%}
    {%- if config_full_refresh is none -%}
        {%- set config_full_refresh = flags.FULL_REFRESH -%}
        {%- if not config_full_refresh and execute and config.get('materialized') == 'incremental' -%}
            {%- set config_full_refresh = customer_analytics.unload_pending(model.unique_id) -%}
        {%- endif -%}
    {%- endif -%}
    {%- do return(config_full_refresh) -%}
{% endmacro %}


{#- Whether a load was unloaded since the model was last built. -#}
{% macro unload_pending(unique_id) %}
    {%- set raw_schema = customer_analytics.generate_schema_name('raw', none) | trim -%}
    {%- set pending -%}
        select unloads.load_id
        from {{ raw_schema }}.unloads as unloads
        where not exists (
            select 1
            from {{ raw_schema }}.unload_rebuilds as rebuilds
            where rebuilds.load_id = unloads.load_id and rebuilds.model_id = '{{ unique_id }}'
        )
    {%- endset -%}
    {%- set found = run_query(pending) -%}
    {%- if found.rows | length > 0 -%}
        {%- do log(unique_id ~ ': rebuilt in full, load ' ~ found.rows[0][0] ~ ' was unloaded', info=true) -%}
    {%- endif -%}
    {%- do return(found.rows | length > 0) -%}
{% endmacro %}


{#- on-run-end: the incremental models this run built record every unload made
    before the run started as applied (one made during the run waits for the next). -#}
{% macro record_unload_rebuilds(results) %}
    {%- set built = [] -%}
    {%- for result in results -%}
        {%- if result.status == 'success' and result.node.resource_type == 'model'
            and result.node.config.materialized == 'incremental' -%}
            {%- do built.append("'" ~ result.node.unique_id ~ "'") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if built and execute -%}
        {%- set raw_schema = customer_analytics.generate_schema_name('raw', none) | trim -%}
        insert into {{ raw_schema }}.unload_rebuilds (model_id, load_id, rebuilt_at)
        select models.model_id, unloads.load_id, current_timestamp
        from {{ raw_schema }}.unloads as unloads
        cross join (
            {%- for model_id in built %}
            select {{ model_id }} as model_id{% if not loop.last %} union all{% endif %}
            {%- endfor %}
        ) as models
        where
            unloads.unloaded_at < cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
            and not exists (
                select 1
                from {{ raw_schema }}.unload_rebuilds as rebuilds
                where rebuilds.load_id = unloads.load_id and rebuilds.model_id = models.model_id
            )
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}
