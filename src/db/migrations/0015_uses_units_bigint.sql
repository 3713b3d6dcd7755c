-- A session's committed units are counted in a JS number (up to 2^53); an integer column refused
-- the write past 2,147,483,647 (a million units a call at a micro-cent each is reached in 2,148
-- calls), and the session could neither be written nor settled.
alter table sessions alter column uses_units type bigint;
