//! Audit log entries (SPEC §7). (Being written.)
