with

final as (

    {{ customer_analytics.valid_rows(ref('base_app__sessions'), [
        'session_id', 'customer_id', 'load_id', 'file_position', 'session_started_at', 'loaded_at',
    ]) }}

)

select * from final
