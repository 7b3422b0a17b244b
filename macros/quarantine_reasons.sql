{#- The one list of quarantine reasons per raw table, each with its meaning, in the
    order the base model checks them (repeats last). The base models may only
    write these reasons (first_problem and quarantine_columns fail to compile on
    another), the test known_quarantine_reasons checks every quarantine model's
    `reason` against it, and the docs show it: the doc block
    <table>_quarantine_reasons (models/staging/<system>/_<system>__docs.md) lists
    the same reasons, which python_tests/test_staging_macros.py checks.
    Keep the body a plain dict literal. -#}
{% macro quarantine_reasons(source_table) -%}
    {%- set reasons = {
        'web_events': {
            'invalid_json': 'the line is not valid JSON',
            'not_an_object': 'the JSON value is not an object',
            'missing_type': 'no "type"',
            'unknown_type': 'a type other than CUSTOMER, SITE_VISIT, IMAGE, ORDER',
            'missing_verb': 'no "verb"',
            'unknown_verb': 'a verb the type does not have',
            'missing_key': 'no "key"',
            'missing_event_time': 'no "event_time"',
            'unparseable_event_time': 'event_time is not an ISO-8601 date-time',
            'missing_customer_id': 'no customer_id (the key, for a CUSTOMER event)',
            'missing_total_amount': 'an ORDER without total_amount',
            'unparseable_total_amount': 'total_amount is not "<number> <currency>"',
            'non_usd_total_amount': 'total_amount is not in USD',
        },
        'store_customers': {
            'malformed_line': 'the CSV line could not be read into its fields',
            'missing_id': 'ID is blank',
            'unparseable_id': 'ID is not a whole number a bigint holds',
            'duplicate_row': 'an earlier line of the same extract repeats the line that wins',
            'superseded_in_extract': 'a later line of the same extract has the same ID',
        },
        'store_sales': {
            'malformed_line': 'the CSV line could not be read into its fields',
            'missing_customer_id': 'CustomerID is blank',
            'unparseable_customer_id': 'CustomerID is not a whole number a bigint holds',
            'missing_amount': 'SalesAmount is blank',
            'unparseable_amount': 'SalesAmount is not a decimal(18, 2)',
            'missing_transaction_date': 'TransactionDate is blank',
            'unparseable_transaction_date': 'TransactionDate is not a date or ISO-8601 date-time',
            'unparseable_shop_id': 'ShopId is not a whole number an integer holds',
            'duplicate_row': 'the same sale landed earlier',
        },
        'crm_customers': {
            'malformed_line': 'the CSV line could not be read into its fields',
            'missing_customer_id': 'Customer_Id is blank',
            'unparseable_customer_id': 'Customer_Id is not a whole number a bigint holds',
            'duplicate_row': 'a later row for the customer has the same values',
            'superseded': 'a later row for the customer has other values',
        },
        'crm_interactions': {
            'malformed_line': 'the CSV line could not be read into its fields',
            'missing_date_start': 'Date Start is blank',
            'unparseable_date_start': 'Date Start is not DD/MM/YYYY HH:MM[:SS]',
            'missing_channel': 'the channel (Interaction) is blank',
            'missing_customer_id': 'Customers is blank',
            'unparseable_customer_id': 'Customers is not a whole number a bigint holds',
            'duplicate_row': 'the same interaction landed earlier',
            'unknown_channel': 'a channel the channels seed does not list (add it there)',
        },
        'crm_products': {
            'malformed_line': 'the CSV line could not be read into its fields',
            'missing_month': 'date is blank',
            'unparseable_month': 'date is not MM-YYYY',
            'missing_product': 'product is blank',
            'duplicate_row': 'a later row for the month names the same product',
            'superseded': 'a later row for the month names another product',
        },
        'app_sessions': {
            'malformed_line': 'the line could not be read into its fields',
            'missing_customer_id': 'customer_id is blank',
            'missing_session_started_at': 'session_started_at is blank',
            'unparseable_session_started_at': 'session_started_at is not an ISO-8601 date-time',
            'duplicate_row': 'the same session landed earlier',
        },
        'app_purchases': {
            'malformed_line': 'the line could not be read into its fields',
            'missing_customer_id': 'customer_id is blank',
            'missing_purchased_at': 'purchased_at is blank',
            'unparseable_purchased_at': 'purchased_at is not an ISO-8601 date-time',
            'missing_amount': 'amount is blank',
            'unparseable_amount': 'amount is not a decimal(18, 2)',
            'duplicate_row': 'the same purchase landed earlier',
        },
        'app_contacts': {
            'malformed_line': 'the line could not be read into its fields',
            'missing_customer_id': 'customer_id is blank',
            'missing_phone_number': 'phone_number is blank',
            'invalid_phone_number': 'phone_number is not an E.164 number',
            'duplicate_row': 'a later row for the customer has the same number',
            'superseded': 'a later row for the customer has another number',
        },
        'session_sources': {
            'malformed_line': 'the line could not be read into its fields',
            'missing_session_id': 'session_id is blank',
            'missing_user_id': 'user_id is blank',
            'missing_event_time': 'event_date or event_time is blank',
            'unparseable_event_time': 'not a YYYY-MM-DD date and HH:MM:SS time',
            'missing_channel': 'channel_name is blank',
            'unparseable_flag': 'an engagement or impression flag is not 0 or 1',
            'duplicate_row': 'the session landed earlier with the same values',
            'conflicting_session_id': 'the session landed earlier with other values',
        },
        'conversions': {
            'malformed_line': 'the line could not be read into its fields',
            'missing_conv_id': 'conv_id is blank',
            'missing_user_id': 'user_id is blank',
            'missing_conversion_time': 'conv_date or conv_time is blank',
            'unparseable_conversion_time': 'not a YYYY-MM-DD date and HH:MM:SS time',
            'missing_revenue': 'revenue is blank',
            'unparseable_revenue': 'revenue is not a decimal(18, 4)',
            'duplicate_conv_id': 'the conversion landed earlier',
        },
        'session_costs': {
            'malformed_line': 'the line could not be read into its fields',
            'missing_session_id': 'session_id is blank',
            'unparseable_cost': 'cost is not a non-negative decimal(18, 6)',
            'duplicate_session_id': "the session's cost landed earlier",
        },
    } -%}
    {%- if source_table not in reasons -%}
        {{ exceptions.raise_compiler_error(
            "quarantine_reasons: no list for '" ~ source_table ~ "': add the raw table's reasons "
            ~ "to macros/quarantine_reasons.sql."
        ) }}
    {%- endif -%}
    {{ return(reasons[source_table]) }}
{%- endmacro %}


{#- Fails for every quarantined row whose reason is not one of the raw table's
    quarantine_reasons. -#}
{% test known_quarantine_reasons(model, column_name, source_table) %}
    {%- set reasons = customer_analytics.quarantine_reasons(source_table) %}
    select {{ column_name }} as unknown_reason, count(*) as row_count
    from {{ model }}
    where {{ column_name }} is null or {{ column_name }} not in (
        {%- for reason in reasons %}'{{ reason }}'{% if not loop.last %}, {% endif %}{% endfor -%}
    )
    group by {{ column_name }}
{% endtest %}
