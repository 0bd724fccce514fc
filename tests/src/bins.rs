//! The workspace binaries (`filet-relay`, `filet`, `filet-certs`), built once per test
//! process ([`bin`]), and running them to completion ([`run`], [`run_off_runtime`],
//! [`filet_as`], [`audit_key`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc as std_mpsc, OnceLock};

use crate::child::signal;
use crate::{TestNet, WAIT};

/// The path of a workspace binary (`filet-relay`, `filet`, `filet-certs`).
///
/// Integration tests of this crate cannot name other packages' binaries
/// (`CARGO_BIN_EXE_*` covers the crate's own), and `cargo test -p filet-tests` does not
/// build them. So the first call in a test process runs
/// `cargo build -p filet-relay -p filet-client -p filet-certs --bins` with the cargo that
/// runs the tests (`$CARGO`), into the same target directory and profile as this test
/// binary (`target/<profile>/deps/<test>` → `target/<profile>/`). The build shares every
/// dependency with this crate's (same features), so it costs the three binaries once.
/// Without `$CARGO` (a test binary run by hand) the binaries must already be there.
///
/// # Panics
/// If the build fails or the binary is missing, saying what to run.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR
        .get_or_init(build_binaries)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

fn build_binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in target/<profile>/deps", exe.display()))?
        .to_owned();
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(profile_dir);
    };
    let target_dir = profile_dir
        .parent()
        .ok_or("the profile directory has no parent")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate has no parent directory")?;
    let mut build = Command::new(cargo);
    // The variables cargo set for this test process describe this crate; inherited, they
    // would change the fingerprints of build scripts that watch them (ring watches
    // CARGO_MANIFEST_DIR) and make this build and `cargo test` rebuild each other's
    // dependencies every time.
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        let set_for_crate = n.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&n.as_ref());
        if set_for_crate {
            build.env_remove(&name);
        }
    }
    let out = build
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "build",
            "--quiet",
            "--offline",
            "--profile",
            &profile,
            "-p",
            "filet-relay",
            "-p",
            "filet-client",
            "-p",
            "filet-certs",
            "--bins",
        ])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build of the workspace binaries failed ({}): {}\nrun `cargo build --workspace --bins` to see why",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(profile_dir)
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs a workspace binary to completion (bounded by [`WAIT`]; killed after) and returns
/// its output. Run it from a blocking context (`spawn_blocking`) when a relay serves on
/// the same runtime.
///
/// # Panics
/// If it cannot be started or does not finish in time.
pub fn run(name: &str, args: &[&str]) -> Output {
    let child = Command::new(bin(name))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("FILET_PROFILE")
        .env_remove("FILET_AUDIT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let pid = child.id();
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(Ok(out)) => Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("{name} {args:?}: {e}"),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{name} {args:?} did not finish within {WAIT:?}")
        }
    }
}

/// `filet-relay audit-key --data-dir D --agreement A`: the verifier key of a data
/// directory's audit log.
///
/// # Panics
/// If the command fails.
pub fn audit_key(net: &TestNet, data_dir: &Path) -> String {
    let out = run(
        "filet-relay",
        &[
            "audit-key",
            "--data-dir",
            path_str(data_dir),
            "--agreement",
            path_str(&net.agreement),
        ],
    );
    assert_eq!(out.code, Some(0), "audit-key failed: {}", out.stderr);
    out.stdout.trim().to_owned()
}

/// A path as a `&str` (the temporary directories are UTF-8).
///
/// # Panics
/// On a non-UTF-8 path.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `filet --profile <the dev profile of unit, dialing relay> ARGS...`, run off the runtime
/// (an in-process relay serves on it meanwhile), bounded by [`WAIT`].
///
/// # Panics
/// If the command cannot run or does not finish in time.
pub async fn filet_as(net: &TestNet, unit: &str, relay: SocketAddr, args: &[&str]) -> Output {
    let profile = net.write_profile(unit, relay);
    let mut all = vec!["--profile".to_owned(), path_str(&profile).to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_off_runtime("filet", all).await
}

/// [`run`] on a blocking thread, so that an in-process relay keeps serving meanwhile.
///
/// # Panics
/// As [`run`].
pub async fn run_off_runtime(name: &'static str, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(name, &args)
    })
    .await
    .expect("the command's thread")
}
