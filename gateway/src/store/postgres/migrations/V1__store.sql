-- Yiwang store, schema version 1: case records with the index rows derived
-- from them (see gateway/src/store/postgres/mod.rs), cursors, adapter kv.
-- Text keys use the "C" collation so every ordering is byte order, the same
-- on every database whatever its default locale.

CREATE TABLE yiwang_case (
    case_number text COLLATE "C" PRIMARY KEY,
    record      jsonb   NOT NULL,
    item        text COLLATE "C" NOT NULL,
    bureau      text COLLATE "C" NOT NULL,
    updated_at  bigint  NOT NULL,
    -- The next time the deadline light may change (none: no clock).
    deadline_at bigint,
    -- Every job delivered and every network final: retention may drop it.
    settled     boolean NOT NULL
);
CREATE INDEX yiwang_case_updated ON yiwang_case (updated_at, case_number);
CREATE INDEX yiwang_case_deadline ON yiwang_case (deadline_at, case_number)
    WHERE deadline_at IS NOT NULL;

-- One row per job of a case; the nullable columns are the index entries the
-- record implies. A claim (lease owner and expiry) belongs on this row.
CREATE TABLE yiwang_job (
    case_number text COLLATE "C" NOT NULL
        REFERENCES yiwang_case (case_number) ON DELETE CASCADE,
    job         integer NOT NULL,
    destination text COLLATE "C" NOT NULL,
    state       text NOT NULL,
    created_at  bigint  NOT NULL,
    pending     boolean NOT NULL,
    due         bigint,
    in_flight   boolean NOT NULL,
    dead_at     bigint,
    PRIMARY KEY (case_number, job)
);
CREATE INDEX yiwang_job_due ON yiwang_job (destination, due, case_number, job)
    WHERE due IS NOT NULL;
CREATE INDEX yiwang_job_pending ON yiwang_job (destination, created_at, case_number, job)
    WHERE pending;
CREATE INDEX yiwang_job_in_flight ON yiwang_job (destination, case_number, job)
    WHERE in_flight;
CREATE INDEX yiwang_job_dead ON yiwang_job (destination, dead_at, case_number, job)
    WHERE dead_at IS NOT NULL;
CREATE INDEX yiwang_job_state ON yiwang_job (state, destination);

-- A ministry's case number -> the unified case.
CREATE TABLE yiwang_xref (
    network             text COLLATE "C" NOT NULL,
    network_case_number text COLLATE "C" NOT NULL,
    case_number         text COLLATE "C" NOT NULL
        REFERENCES yiwang_case (case_number) ON DELETE CASCADE,
    PRIMARY KEY (network, network_case_number)
);
CREATE INDEX yiwang_xref_case ON yiwang_xref (case_number);

CREATE TABLE yiwang_cursor (
    network text COLLATE "C" PRIMARY KEY,
    cursor  text NOT NULL
);

CREATE TABLE yiwang_kv (
    network text COLLATE "C" NOT NULL,
    key     text COLLATE "C" NOT NULL,
    value   bytea NOT NULL,
    PRIMARY KEY (network, key)
);

-- Each network's kv usage, changed in the same transaction as the entry.
CREATE TABLE yiwang_kv_usage (
    network text COLLATE "C" PRIMARY KEY,
    bytes   bigint NOT NULL,
    keys    bigint NOT NULL
);
