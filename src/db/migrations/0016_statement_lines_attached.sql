-- A statement lists what was not yet on one, instead of what falls in its period by timestamp: a
-- charge slip is dated when its session's transition happened, but the journal may commit it
-- later (PostgreSQL refusing writes for a while), after the statement of that period was made,
-- and a line read by date would then be on no statement at all (for a postpaid account, never
-- charged). Each line now records the statement it went on; a late one goes on the next.
alter table charge_slips add column statement_id uuid references statements (id);
alter table top_ups add column statement_id uuid references statements (id);
alter table balance_refunds add column statement_id uuid references statements (id);

-- What the statements made so far listed, by the rule they were made with.
update charge_slips c set statement_id = st.id
from sessions s, statements st
where s.id = c.session_id and st.account_id = s.account_id and c.created_at >= st.period_start and c.created_at < st.period_end;
update top_ups t set statement_id = st.id
from statements st
where st.account_id = t.account_id and t.state = 'charged' and t.settled_at >= st.period_start and t.settled_at < st.period_end;
update balance_refunds r set statement_id = st.id
from statements st
where st.account_id = r.account_id and r.created_at >= st.period_start and r.created_at < st.period_end;
