//! Filet PKI (being written).
