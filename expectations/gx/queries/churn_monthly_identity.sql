-- marts.churn_monthly with the residual of docs/marts.md's identity, which must be 0 on every
-- month: active_at_end = active_at_start - churned + new_customers + reactivated
select
    *,
    active_at_end - (active_at_start - churned + new_customers + reactivated)
        as identity_difference
from marts.churn_monthly
