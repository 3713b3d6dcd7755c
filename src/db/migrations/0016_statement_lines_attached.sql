-- A statement lists what was not yet on one, instead of what falls in its period by timestamp: a
-- charge slip is dated when its session's transition happened, but the journal may commit it
-- later (PostgreSQL refusing writes for a while), after the statement of that period was made,
-- and a line read by date would then be on no statement at all (for a postpaid account, never
-- charged). Each line now records the statement it went on; a late one goes on the next.
alter table charge_slips add column statement_id uuid references statements (id);
alter table top_ups add column statement_id uuid references statements (id);
alter table balance_refunds add column statement_id uuid references statements (id);

-- What the statements made so far listed, read from their own lines (not by date: a line dated in
-- a stated period but written after its statement is on none, and must go on the next).
update charge_slips c set statement_id = st.id
from statements st, jsonb_array_elements(st.lines) l
where l->>'kind' = 'session' and l->>'chargeSlipId' = c.id;
update top_ups t set statement_id = st.id
from statements st, jsonb_array_elements(st.lines) l
where l->>'kind' = 'top_up' and l->>'topUpId' = t.id::text;
update balance_refunds r set statement_id = st.id
from statements st, jsonb_array_elements(st.lines) l
where l->>'kind' = 'refund' and l->>'refundId' = r.id::text;
