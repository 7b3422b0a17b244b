{#- The channels of the `channels` seed, in display order, read from the seed's
    table: found through the graph, or (in unit tests, where the graph is empty)
    in the seeds' schema, so unit tests see the real list too. Empty when the seed
    has not been built yet (e.g. while SQLFluff compiles). -#}
{% macro seed_channels() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set seed = graph.get('nodes', {}).values()
        | selectattr('resource_type', 'equalto', 'seed')
        | selectattr('name', 'equalto', 'channels')
        | first -%}
    {%- if seed -%}
        {%- set relation = adapter.get_relation(seed.database, seed.schema, seed.alias) -%}
    {%- else -%}
        {#- dbt_project.yml puts seeds in the staging schema -#}
        {%- set relation = adapter.get_relation(
            target.database, customer_analytics.generate_schema_name('staging', none) | trim, 'channels'
        ) -%}
    {%- endif -%}
    {%- if relation is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set result = run_query('select channel from ' ~ relation ~ ' order by display_order, channel') -%}
    {{ return(result.columns[0].values() | list) }}
{%- endmacro %}


{#- The pivot column name of a channel: lowercase, runs of other characters as _. -#}
{% macro channel_column_name(channel) -%}
    {{ modules.re.sub('[^a-z0-9]+', '_', channel | lower).strip('_') }}
{%- endmacro %}


{#- The interaction pivot: one integer column per channel of the `channels` seed
    (the count of rows whose `channel_column` is that channel, zero when none),
    then `total_interactions` over the known channels. Use inside a select that
    groups by the pivot's grain; adding a channel to the seed adds a column with
    no SQL edit. Counts `count_column` (null rows, e.g. from a left join, count 0). -#}
{% macro channel_pivot_columns(channel_column='channel', count_column='interaction_id') -%}
    {%- set channels = customer_analytics.seed_channels() -%}
    {%- for channel in channels %}
    cast(count(case when {{ channel_column }} = '{{ channel | replace("'", "''") }}' then {{ count_column }} end) as integer)
        as {{ customer_analytics.channel_column_name(channel) }},
    {%- endfor %}
    cast(count(
        case
            when {{ channel_column }} in (
                {%- for channel in channels %}'{{ channel | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
                {{- "''" if not channels -}}
            ) then {{ count_column }}
        end
    ) as integer) as total_interactions
{%- endmacro %}
