{#
    Every kpi_daily metric column is a KPI (docs/marts.md "kpi_scorecard"): the rows of the seed
    kpi_definitions, the macro kpi_metric_columns (which kpi_scorecard unpivots) and the columns
    of kpi_daily other than date_day must be the same set. Returns each name missing from one of
    them, with where it is missing.
#}

with

seed_kpis as (

    select kpi from {{ ref('kpi_definitions') }}

),

macro_kpis as (

    {%- for kpi in kpi_metric_columns() %}
    select '{{ kpi }}' as kpi
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

table_kpis as (

    select kpi_daily_columns.column_name as kpi
    from ({{ column_names_of(ref('kpi_daily')) }}) as kpi_daily_columns
    where kpi_daily_columns.column_name <> 'date_day'

),

all_kpis as (

    select kpi from seed_kpis
    union
    select kpi from macro_kpis
    union
    select kpi from table_kpis

),

final as (

    select
        all_kpis.kpi,
        seed_kpis.kpi is null as is_missing_from_seed,
        macro_kpis.kpi is null as is_missing_from_macro,
        table_kpis.kpi is null as is_missing_from_kpi_daily
    from all_kpis
    left join seed_kpis
        on all_kpis.kpi = seed_kpis.kpi
    left join macro_kpis
        on all_kpis.kpi = macro_kpis.kpi
    left join table_kpis
        on all_kpis.kpi = table_kpis.kpi
    where
        seed_kpis.kpi is null
        or macro_kpis.kpi is null
        or table_kpis.kpi is null

)

select * from final
