//! Test and demo PKI (filled in by issue 4).
