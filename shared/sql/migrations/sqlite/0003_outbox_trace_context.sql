-- SQLite twin of ../0003_outbox_trace_context.sql (SQLite adds one column per statement).
ALTER TABLE outbox ADD COLUMN traceparent TEXT NULL;
ALTER TABLE outbox ADD COLUMN tracestate TEXT NULL;
