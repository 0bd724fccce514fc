//! Filet client (being written).
