-- App sessions and purchases dated after as_of_date: left out of
-- customer_engagement's window. Warns (does not fail) with their count, so a
-- clock problem or a wrong as_of_date is seen.
{{ config(severity='warn') }}

with

sessions as (

    select
        'session' as event_kind,
        session_id as event_id,
        session_started_at as event_at
    from {{ ref('stg_app__sessions') }}

),

purchases as (

    select
        'purchase' as event_kind,
        purchase_id as event_id,
        purchased_at as event_at
    from {{ ref('stg_app__purchases') }}

),

events as (

    select * from sessions
    union all
    select * from purchases

)

select * from events
where cast(event_at as date) > {{ customer_analytics.as_of_date() }}
