//! Filet end to end, in one test binary (one link of the workspace instead of one per
//! file): real relays, in process or as child processes, and real nodes over QUIC on
//! loopback. Each module is a capability, its tests named `module::what_it_shows`
//! (`cargo test -p filet-tests --test e2e -- lifecycle::` runs one module). The support
//! they share (`TestNet`, `TestRelay`, `ChildRelay`, the workspace binaries) is the
//! `filet-tests` library, `tests/src/`. The console's browser tests are their own binary
//! (`tests/tests/console_browser.rs`: they need Chromium).
//!
//! To add a test: a `#[tokio::test]` in the module of its capability, or a new module
//! here (`mod name;` and `name.rs` beside this file).

mod audit;
mod audit_dir;
mod audit_paging;
mod cap;
mod cli;
mod console_cli;
mod crash;
mod crl;
mod delivery;
mod durability;
mod hostile_frames;
mod hostile_input;
mod identity;
mod identity_matrix;
mod init;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod reload;
mod routing;
mod shutdown;
mod status;
mod transport_limits;
