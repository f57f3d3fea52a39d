-- Yiwang store, schema version 4: leader leases. One row per singleton task
-- (a network's poller or status follow-up, the deadline monitor,
-- housekeeping): the replica that runs it and the lease's expiry. See
-- gateway/src/store/leader.rs.

CREATE TABLE yiwang_leader (
    task text COLLATE "C" PRIMARY KEY,
    owner text COLLATE "C" NOT NULL,
    lease_until bigint NOT NULL
);
