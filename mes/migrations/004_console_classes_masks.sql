-- The console's class filter and mask flag on the PostgreSQL read model (issue 12): the class scores as the
-- result carries them, the classes the filter matches (every detection's label and every class scored 0.5 or
-- more: the MongoDB filter's rule, computed by the sink) and whether the result has an anomaly mask (the
-- mask's bytes stay in MongoDB, where the console serves them from). Constant defaults: adding the columns
-- rewrites nothing.
ALTER TABLE inspections
    ADD COLUMN IF NOT EXISTS class_scores jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS classes      text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS has_mask     boolean NOT NULL DEFAULT false;

-- Rows written before this migration carry no class scores: their classes are their detections' labels and
-- the class they were counted under (what the console matched on them before), so old rows still filter.
UPDATE inspections
SET classes = ARRAY(
    SELECT DISTINCT label FROM (
        SELECT d ->> 'label' AS label FROM jsonb_array_elements(detections) AS d
        UNION ALL SELECT defect_class
    ) AS found
    WHERE label IS NOT NULL ORDER BY label
)
WHERE detections <> '[]'::jsonb OR defect_class IS NOT NULL;
