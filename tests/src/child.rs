//! [`ChildRelay`]: the `filet-relay` binary as a child process, the one way the tests start
//! one. A [`ChildRelayBuilder`] says how (its data directory, PKI and agreement, or a
//! configuration file; the address; log options; environment); [`ChildRelayBuilder::start`]
//! waits for its `listening on` line, [`ChildRelayBuilder::try_start`] also accepts an exit
//! (a relay that refuses to start). Its stderr is captured line by line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{bin, path_str, TestNet, WAIT};

/// Sends a signal (`TERM`, `KILL`, `HUP`) to a process with the `kill` command.
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// `filet-relay serve` as a child process, its stderr captured.
///
/// The address is read from the relay's own log line `listening on ADDR`, so there is no
/// race for a port. Dropping it kills the process (SIGKILL).
pub struct ChildRelay {
    child: Option<Child>,
    /// The address the relay logged.
    pub addr: SocketAddr,
    /// The audit verifier key the relay logged.
    pub logged_key: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// How a `filet-relay serve` child ended its start-up: serving, or exited with this code
/// and stderr.
pub enum ChildStart {
    /// It logged `listening on`.
    Serving(ChildRelay),
    /// It exited first (`None`: killed by a signal).
    Exited(Option<i32>, String),
}

/// How to start a [`ChildRelay`]: `filet-relay [GLOBAL...] serve [--config F] --listen A
/// [--data-dir D] [--pki P] [--agreement G] [ARGS...]`, with `NO_COLOR=1` and
/// `RUST_LOG=info` unless [`ChildRelayBuilder::env`] sets them. It owns what it holds, so it
/// can be built on the runtime and started on a blocking thread.
#[derive(Clone, Debug)]
pub struct ChildRelayBuilder {
    global: Vec<String>,
    config: Option<PathBuf>,
    listen: String,
    data_dir: Option<PathBuf>,
    pki: Option<PathBuf>,
    agreement: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ChildRelay {
    /// A builder listening on `127.0.0.1:0`, with nothing else set.
    pub fn builder() -> ChildRelayBuilder {
        ChildRelayBuilder {
            global: Vec::new(),
            config: None,
            listen: "127.0.0.1:0".to_owned(),
            data_dir: None,
            pki: None,
            agreement: None,
            args: Vec::new(),
            env: vec![
                ("NO_COLOR".to_owned(), "1".to_owned()),
                ("RUST_LOG".to_owned(), "info".to_owned()),
            ],
        }
    }

    /// Starts `filet-relay serve --listen 127.0.0.1:0 --data-dir D --pki P --agreement A`
    /// (the PKI and agreement of `net`) and waits (at most [`WAIT`]) for its `listening on`
    /// line. Call from a blocking context if the runtime has work to do meanwhile.
    ///
    /// # Panics
    /// If it exits or says nothing in time; the message holds its stderr.
    pub fn start(net: &TestNet, data_dir: &Path) -> ChildRelay {
        ChildRelay::builder().net(net).data_dir(data_dir).start()
    }

    /// Everything the relay wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// The process id.
    ///
    /// # Panics
    /// If the relay was already stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running child").id()
    }

    /// Sends a signal (`HUP`, `TERM`...) without waiting for anything.
    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Sends SIGTERM and waits (at most [`WAIT`]) for the exit: the graceful stop.
    ///
    /// # Panics
    /// If it does not exit in time (it is then killed).
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.stop("TERM")
    }

    /// Sends SIGKILL and waits for the exit: a crash at this moment.
    ///
    /// # Panics
    /// If it does not exit in time.
    pub fn kill(mut self) -> (ExitStatus, String) {
        self.stop("KILL")
    }

    /// Sends SIGTERM, waits (at most [`WAIT`]) for the exit and then for the end of its
    /// stderr, so that the text returned holds every line the relay wrote (what
    /// [`ChildRelay::terminate`] returns may miss the last lines, still in the pipe).
    ///
    /// # Panics
    /// If it does not exit, or its stderr does not end, in time.
    pub fn terminate_drained(self) -> (ExitStatus, String) {
        let log = self.log.clone();
        let (status, _) = self.terminate();
        // The reading thread holds the only other reference until the end of file.
        let deadline = Instant::now() + WAIT;
        while Arc::strong_count(&log) > 1 {
            assert!(
                Instant::now() < deadline,
                "filet-relay's stderr did not end within {WAIT:?} of its exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = log.lock().map(|l| l.join("\n")).unwrap_or_default();
        (status, text)
    }

    /// Polls the captured stderr (at most `limit`) until a line contains `needle`; returns
    /// that line. A log line is an event nobody is told about: polling with a deadline is
    /// the only way to wait for it.
    ///
    /// # Panics
    /// If no line matches in time; the message holds the stderr.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let found = self
                .log
                .lock()
                .ok()
                .and_then(|l| l.iter().find(|l| l.contains(needle)).cloned());
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "filet-relay logged no line with {needle:?} within {limit:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self, sig: &str) -> (ExitStatus, String) {
        let child = self.child.take().expect("a running child");
        let pid = child.id();
        let (tx, rx) = std_mpsc::channel();
        let mut child = child;
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        signal(pid, sig);
        match rx.recv_timeout(WAIT) {
            Ok(Ok(status)) => (status, self.stderr()),
            Ok(Err(e)) => panic!("waiting for filet-relay: {e}"),
            Err(_) => {
                signal(pid, "KILL");
                panic!(
                    "filet-relay did not exit within {WAIT:?} of SIG{sig}:\n{}",
                    self.stderr()
                )
            }
        }
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ChildRelayBuilder {
    /// The PKI and agreement of `net` (`--pki`, `--agreement`).
    pub fn net(mut self, net: &TestNet) -> Self {
        self.pki = Some(net.pki.clone());
        self.agreement = Some(net.agreement.clone());
        self
    }

    /// `--data-dir`.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// `--config`: a configuration file (the options given as well override it).
    pub fn config(mut self, file: &Path) -> Self {
        self.config = Some(file.to_owned());
        self
    }

    /// `--listen` (default `127.0.0.1:0`): a fixed address, e.g. a restart on the same one.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr.to_string();
        self
    }

    /// An option of `filet-relay` itself, before `serve` (e.g. `--log-json`).
    pub fn global_arg(mut self, arg: &str) -> Self {
        self.global.push(arg.to_owned());
        self
    }

    /// An option of `serve`, after the others.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// An environment variable (`RUST_LOG=debug`; `NO_COLOR=` for an empty one).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The command line after `filet-relay`.
    pub fn command_line(&self) -> Vec<String> {
        let mut all = self.global.clone();
        all.push("serve".to_owned());
        if let Some(c) = &self.config {
            all.extend(["--config".to_owned(), path_str(c).to_owned()]);
        }
        all.extend(["--listen".to_owned(), self.listen.clone()]);
        for (flag, value) in [
            ("--data-dir", &self.data_dir),
            ("--pki", &self.pki),
            ("--agreement", &self.agreement),
        ] {
            if let Some(v) = value {
                all.extend([flag.to_owned(), path_str(v).to_owned()]);
            }
        }
        all.extend(self.args.iter().cloned());
        all
    }

    /// Starts the relay and waits (at most [`WAIT`]) for its `listening on` line. Call from
    /// a blocking context if the runtime has work to do meanwhile.
    ///
    /// # Panics
    /// If it exits or says nothing in time; the message holds its stderr.
    pub fn start(self) -> ChildRelay {
        let args = self.command_line();
        match self.try_start() {
            ChildStart::Serving(relay) => relay,
            ChildStart::Exited(code, stderr) => {
                panic!("filet-relay {args:?} exited ({code:?}) before `listening on`:\n{stderr}")
            }
        }
    }

    /// Like [`ChildRelayBuilder::start`], but a relay that refuses to start is an answer,
    /// not a panic: waits (at most [`WAIT`]) for `listening on` or for the exit.
    ///
    /// # Panics
    /// If it neither serves nor exits in time (it is then killed).
    pub fn try_start(self) -> ChildStart {
        let args = self.command_line();
        let mut cmd = Command::new(bin("filet-relay"));
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start filet-relay: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std_mpsc::channel::<String>();
        let log2 = log.clone();
        // Ends at the child's end of file (it exits or is killed).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut l) = log2.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let text =
            |log: &Arc<Mutex<Vec<String>>>| log.lock().map(|l| l.join("\n")).unwrap_or_default();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr: SocketAddr = rest
                            .split_whitespace()
                            .next()
                            .and_then(|a| a.parse().ok())
                            .unwrap_or_else(|| panic!("no address in `listening on {rest}`"));
                        // In JSON the key is followed by the rest of the object.
                        let logged_key = rest
                            .split("audit verifier key ")
                            .nth(1)
                            .map(|k| k.split('"').next().unwrap_or(k).trim().to_owned())
                            .unwrap_or_default();
                        return ChildStart::Serving(ChildRelay {
                            child: Some(child),
                            addr,
                            logged_key,
                            log,
                        });
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    // End of its stderr: it exited (or is about to).
                    let status = child.wait().expect("wait for filet-relay");
                    return ChildStart::Exited(status.code(), text(&log));
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "filet-relay {args:?} neither served nor exited within {WAIT:?}:\n{}",
                        text(&log)
                    );
                }
            }
        }
    }
}
