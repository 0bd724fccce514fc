//! C2SP tlog-checkpoint and C2SP signed-note formats. (Being written.)
