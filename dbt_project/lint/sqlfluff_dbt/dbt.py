"""dbt's cross-database macros (`dbt.dateadd(...)` and friends), as SQLFluff sees them."""


def date_trunc(datepart, date):
    return f"date_trunc('{datepart}', {date})"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"({from_date_or_timestamp} + ((interval '1 {datepart}') * ({interval})))"


def datediff(first_date, second_date, datepart):
    return f"date_diff('{datepart}', {first_date}, {second_date})"
