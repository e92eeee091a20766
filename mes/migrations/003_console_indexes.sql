-- The console's inspection list (issue 12): newest first with keyset pagination on (captured_at, id), filtered
-- by camera, line, verdict or model version. Each index ends in (captured_at DESC, id DESC), so a filtered page
-- is an index range read in order and stops after LIMIT rows, however deep the cursor.
CREATE INDEX IF NOT EXISTS inspections_captured_id ON inspections (captured_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS inspections_camera_captured_id ON inspections (camera_id, captured_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS inspections_line_captured_id ON inspections (line_id, captured_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS inspections_verdict_captured_id ON inspections (verdict, captured_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS inspections_version_captured_id
    ON inspections (model_version, captured_at DESC, id DESC);
