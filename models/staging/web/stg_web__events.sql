with

final as (

    {{ customer_analytics.valid_rows(ref('base_web__events'), [
        'event_row_id', 'event_id', 'load_id', 'entity_key', 'customer_id', 'event_type', 'verb',
        'last_name', 'adr_city', 'adr_state', 'camera_make', 'camera_model', 'tags_json', 'file_position',
        'total_amount_usd', 'is_first_landing', 'event_at', 'loaded_at',
    ]) }}

)

select * from final
