-- A delivery still pending when its endpoint is disabled is cancelled: it will never be sent, and
-- the log says so instead of showing it pending for ever.
alter table webhook_deliveries drop constraint webhook_deliveries_state_check;
alter table webhook_deliveries add constraint webhook_deliveries_state_check check (state in ('pending', 'delivered', 'failed', 'cancelled'));
update webhook_deliveries d set state = 'cancelled'
from webhook_endpoints w
where w.id = d.endpoint_id and w.disabled_at is not null and d.state = 'pending';
