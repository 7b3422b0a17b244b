{#- What `runner attribute` could not write as a result, and why; as landed. -#}
with

source as (

    select
        run_id,
        conv_id,
        reason,
        detail,
        rejected_at
    from {{ source('ihc', 'rejects') }}

),

final as (

    select * from source

)

select * from final
