-- Schema 14 (issue 25): transfers by time. The web UI's dashboard reads "what went to each
-- partner this week" (Store::audit_window); without this index that read would scan the
-- whole log, since time_ns is the appender's wall clock, not a key. (partner, time_ns) serves
-- the same window for one partner.
CREATE INDEX audit_entries_time ON audit_entries (time_ns);
CREATE INDEX audit_entries_partner_time ON audit_entries (partner, time_ns);
