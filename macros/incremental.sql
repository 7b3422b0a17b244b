{#- What an incremental run reads. Rows are picked by the load that landed them,
    never by event time, so an event of any age is processed when its file lands.
    The lookback (var incremental_lookback_days) only bounds how far back in load
    time a run looks for loads it has not seen yet: a load that committed after a
    later-started one within that window is still picked up. -#}

{% macro incremental_lookback_start(loaded_at_column='loaded_at') -%}
    {{ dbt.dateadd(
        'day',
        -1 * var('incremental_lookback_days'),
        "coalesce((select max(" ~ loaded_at_column ~ ") from " ~ this ~ "), "
            ~ "cast('1900-01-01' as " ~ dbt.type_timestamp() ~ "))",
    ) }}
{%- endmacro %}

{% macro unprocessed_loads(load_id_column='load_id', loaded_at_column='loaded_at') -%}
    {%- if is_incremental() -%}
        {{ loaded_at_column }} >= {{ customer_analytics.incremental_lookback_start() }}
        and {{ load_id_column }} not in (
            select distinct load_id
            from {{ this }}
            where loaded_at >= {{ customer_analytics.incremental_lookback_start() }}
        )
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{% macro ranked_landings(key, compare_content=false, relation='checked') -%}
    {#- Body of the `ranked` CTE of a staging base model: the rows of `checked`
        with `occurrence`, their rank among the rows of the same key and problem
        by landing order (the first landed wins). Incremental, a valid row whose
        key already has a valid row built counts as a later landing. With
        compare_content, also `first_content_hash`: the content_hash of the
        first landing, so a repeat can be told from a conflict. -#}
    {%- set landing_order -%}
        partition by {{ relation }}.{{ key }}, {{ relation }}.row_problem
        order by {{ relation }}.loaded_at, {{ relation }}.load_id, {{ relation }}.file_position
    {%- endset -%}
    select
        {{ relation }}.*,
        row_number() over ({{ landing_order }})
        {%- if is_incremental() %} + case when earlier.{{ key }} is null then 0 else 1 end{% endif %} as occurrence
        {%- if compare_content %},
        coalesce(
            {%- if is_incremental() %} earlier.content_hash,{% endif %}
            first_value({{ relation }}.content_hash) over ({{ landing_order }})
        ) as first_content_hash
        {%- endif %}
    from {{ relation }}
    {%- if is_incremental() %}
    left join (
        select distinct
            {{ key }}{% if compare_content %},
            content_hash{% endif %}
        from {{ this }}
        where
            reason is null
            and {{ key }} in (select {{ key }} from {{ relation }} where row_problem is null)
    ) as earlier
        on
            {{ relation }}.row_problem is null
            and {{ relation }}.{{ key }} = earlier.{{ key }}
    {%- endif %}
{%- endmacro %}

{% macro ranked_latest(partition_by, compared) -%}
    {#- Body of the `ranked` CTE of a staging base model whose latest landing
        wins (full extracts): the rows of `checked` with `recency`, their rank
        among the rows of the same key and problem, latest first (the latest
        load, then its last line), and `winning_values`, the `compared`
        expression of the row that wins, so a repeat of it can be told from a
        row it supersedes. Not incremental: a later extract changes the winner. -#}
    {%- set latest_first -%}
        partition by {{ partition_by | join(', ') }}, row_problem
        order by loaded_at desc, load_id desc, file_position desc
    {%- endset -%}
    select
        *,
        row_number() over ({{ latest_first }}) as recency,
        first_value({{ compared }}) over ({{ latest_first }}) as winning_values
    from checked
{%- endmacro %}

{#- The materialization of a model whose incremental runs replace the rows of the
    keys they touched (delete+insert by unique_key): incremental on DuckDB and
    PostgreSQL; on Spark without Delta Lake a table, rebuilt whole on every run.
    A Parquet table has neither merge nor delete; an insert_overwrite by partition
    would need a partition per key (the key's rows are replaced, not its
    partition's), and Spark refuses to overwrite a table the query reads (the
    incremental run reads its own last_loaded_at). Rebuilt whole, the rows are those
    of a full refresh by construction. -#}
{% macro replaced_by_key_materialized() -%}
    {{ return('table' if target.type == 'spark' else 'incremental') }}
{%- endmacro %}
