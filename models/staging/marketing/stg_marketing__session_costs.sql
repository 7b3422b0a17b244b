with

final as (

    {{ customer_analytics.valid_rows(ref('base_marketing__session_costs'), [
        'session_id', 'load_id', 'file_position', 'cost', 'loaded_at',
    ]) }}

)

select * from final
