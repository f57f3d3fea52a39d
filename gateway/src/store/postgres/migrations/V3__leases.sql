-- Yiwang store, schema version 3: leases. An in-flight job carries the
-- replica that claimed it and the lease's expiry (both also in the record's
-- job state; see gateway/src/store/lease.rs). A claim counts a
-- destination's live leases (its concurrency limit is global across
-- replicas) and recovers the in-flight jobs whose lease expired; both read
-- this index. An in-flight job from before this version has no lease: it
-- counts as expired.

ALTER TABLE yiwang_job ADD COLUMN lease_owner text COLLATE "C";
ALTER TABLE yiwang_job ADD COLUMN lease_until bigint;
CREATE INDEX yiwang_job_lease ON yiwang_job (destination, lease_until, case_number, job)
    WHERE in_flight;
