-- Inspection rows, one per (frame, model version): `id` is MongoDB's `_id` (camera:frame:version).
-- Range-partitioned by month on captured_at, so retention is `DROP TABLE inspections_yYYYYmMM`; the primary
-- key has to include the partition key, and captured_at never changes for a frame, so (id, captured_at) is
-- as unique as id alone.
CREATE TABLE inspections (
    id               text        NOT NULL,
    captured_at      timestamptz NOT NULL,
    camera_id        text        NOT NULL,
    line_id          text        NOT NULL,
    station_id       text        NOT NULL,
    frame_number     bigint      NOT NULL,
    part_id          text,
    model_name       text        NOT NULL,
    model_version    text        NOT NULL,
    task             text        NOT NULL,
    verdict          text        NOT NULL,
    defect_class     text,
    defect_score     double precision,
    anomaly_score    double precision,
    detections       jsonb       NOT NULL DEFAULT '[]',
    received_at      timestamptz NOT NULL,
    inferred_at      timestamptz NOT NULL,
    worker_id        text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (id, captured_at)
) PARTITION BY RANGE (captured_at);

CREATE INDEX inspections_line_captured ON inspections (line_id, captured_at);

-- Counts per line, station, model version and window, recomputed from the rows of the windows a batch
-- touched (never incremented), so a replayed batch leaves them as they were.
CREATE TABLE inspection_windows (
    line_id        text        NOT NULL,
    station_id     text        NOT NULL,
    model_version  text        NOT NULL,
    window_start   timestamptz NOT NULL,
    window_seconds integer     NOT NULL,
    inspections    bigint      NOT NULL,
    ok             bigint      NOT NULL,
    defect         bigint      NOT NULL,
    uncertain      bigint      NOT NULL,
    PRIMARY KEY (line_id, station_id, model_version, window_seconds, window_start)
);

-- Records of the results topic the sink could not decode: kept, with where they came from, never dropped.
CREATE TABLE rejected_records (
    source_topic     text    NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint  NOT NULL,
    error            text    NOT NULL,
    payload          bytea,
    rejected_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_topic, source_partition, source_offset)
);
