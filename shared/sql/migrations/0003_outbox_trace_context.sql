-- The W3C trace context (traceparent, tracestate) of the request that wrote each event, so
-- the relay, publishing what a failed send left behind, continues that request's trace.
-- NULL for events written before this migration or with telemetry off.
ALTER TABLE dbo.outbox ADD traceparent VARCHAR(55) NULL, tracestate VARCHAR(512) NULL;
