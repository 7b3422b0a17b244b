{#- Checks a type-2 history: per entity, versions ordered by valid_from must chain
    without overlap or gap (each valid_to equals the next valid_from), only the
    last version may be open (valid_to null), exactly one version is current, and
    no version ends before it starts. Fails with one row per offending version. -#}
{% test valid_type2_history(
    model, entity_column, valid_from='valid_from', valid_to='valid_to', current_flag='is_current'
) %}

with

versions as (

    select
        {{ entity_column }} as entity_id,
        {{ valid_from }} as valid_from,
        {{ valid_to }} as valid_to,
        {{ current_flag }} as is_current,
        lead({{ valid_from }}) over (
            partition by {{ entity_column }} order by {{ valid_from }}
        ) as next_valid_from,
        sum(case when {{ current_flag }} then 1 else 0 end) over (
            partition by {{ entity_column }}
        ) as current_versions
    from {{ model }}

),

problems as (

    select
        entity_id,
        valid_from,
        valid_to,
        case
            when current_versions <> 1 then 'entity does not have exactly one current version'
            when valid_to is not null and valid_to <= valid_from then 'version ends before it starts'
            when next_valid_from is null and valid_to is not null and is_current then 'current version is closed'
            when next_valid_from is not null and valid_to is null then 'open version is not the last'
            when next_valid_from is not null and valid_to < next_valid_from then 'gap before the next version'
            when next_valid_from is not null and valid_to > next_valid_from then 'overlaps the next version'
            when next_valid_from is not null and is_current then 'current version is not the last'
        end as problem
    from versions

)

select * from problems
where problem is not null

{% endtest %}
