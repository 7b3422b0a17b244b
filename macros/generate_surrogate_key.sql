{#- A deterministic key from several columns: md5 of the values joined with a
    separator, nulls replaced by a marker so that (null, 'a') and ('a', null)
    differ. Same recipe as the well-known dbt_utils macro, kept here because the
    package hub is out of reach. -#}
{% macro generate_surrogate_key(field_list) -%}
    {%- set parts = [] -%}
    {%- for field in field_list -%}
        {%- do parts.append("coalesce(cast(" ~ field ~ " as " ~ dbt.type_string() ~ "), '_dbt_null_')") -%}
        {%- if not loop.last -%}{%- do parts.append("'-'") -%}{%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}
