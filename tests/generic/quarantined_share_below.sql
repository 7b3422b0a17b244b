{#- Per source, over all its loads: fails (use severity warn) for each source whose
    quarantined rows exceed `threshold` of the rows landed (var
    quarantine_warn_share, default 0.05). -#}
{% test quarantined_share_below(model, threshold) %}

with

per_load as (

    select
        source_table,
        load_id,
        max(rows_landed) as rows_landed,
        sum(case when is_quarantined then row_count else 0 end) as rows_quarantined
    from {{ model }}
    group by source_table, load_id

),

per_source as (

    select
        source_table,
        sum(rows_landed) as rows_landed,
        sum(rows_quarantined) as rows_quarantined
    from per_load
    group by source_table

)

select
    source_table,
    rows_landed,
    rows_quarantined,
    1.0 * rows_quarantined / rows_landed as quarantined_share
from per_source
where rows_landed > 0 and 1.0 * rows_quarantined / rows_landed > {{ threshold }}

{% endtest %}
