//! Filet relay (being written).
