{#- Valid CRM interactions on a channel of the `channels` seed. An interaction on
    a channel the seed does not list is quarantined (unknown_channel, see
    stg_crm__interactions_quarantine), not a failed build: once the channel is
    added to the seed, the next build counts it. -#}
with

channels as (

    select channel from {{ ref('channels') }}

),

valid as (

    {{ customer_analytics.valid_rows(ref('base_crm__interactions'), [
        'interaction_id', 'customer_id', 'load_id', 'channel', 'file_position', 'interaction_at', 'loaded_at',
    ]) }}

),

final as (

    select * from valid
    where channel in (select channels.channel from channels)

)

select * from final
