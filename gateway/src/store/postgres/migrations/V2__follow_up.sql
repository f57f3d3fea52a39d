-- Yiwang store, schema version 2: the cases open for status follow-up on
-- each network, with the time each is next asked (the index entry
-- `FollowUp` of gateway/src/store/record.rs; see store/follow_up.rs).

CREATE TABLE yiwang_follow_up (
    case_number text COLLATE "C" NOT NULL
        REFERENCES yiwang_case (case_number) ON DELETE CASCADE,
    network     text COLLATE "C" NOT NULL,
    at          bigint NOT NULL,
    PRIMARY KEY (case_number, network)
);
CREATE INDEX yiwang_follow_up_due ON yiwang_follow_up (network, at, case_number);
