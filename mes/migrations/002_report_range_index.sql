-- `lineguard report --source postgres` selects a time range, often without a line: the (line_id, captured_at)
-- index cannot serve that (no skip scan before PostgreSQL 18), partition pruning only narrows it to months.
-- Camera, station and model-version filters are equalities on the range's rows, so the range is the index.
CREATE INDEX IF NOT EXISTS inspections_captured ON inspections (captured_at);
