//! `filet console` and `filet status` as a person runs them: the one-time address printed
//! in the locale's language, loopback only, the delivery status from the command line.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use filet_tests::*;

/// Starts `filet console` with `env`, reads what it prints until the sign-in address, then
/// stops it; returns the printed text and the address.
fn console_prints(profile: &str, env: &[(&str, &str)], extra: &[&str]) -> (String, String) {
    let mut cmd = Command::new(bin("filet"));
    cmd.args(["--profile", profile, "console", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            text.push_str(&line);
            text.push('\n');
            if line.contains("/login?token=") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("filet console prints its sign-in address");
    let url = text
        .lines()
        .find(|l| l.contains("/login?token="))
        .unwrap()
        .trim()
        .to_owned();
    // The address works: the token becomes a session cookie and a redirect to `/`.
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let path = &url[url.find("/login").unwrap()..];
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(answer.contains("HttpOnly; SameSite=Strict"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
    (text, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filet_console_prints_its_address_in_the_locales_language_and_refuses_to_listen_beyond_loopback(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let profile = net.write_profile("DPJ/RTS", relay.addr);
    let p = path_str(&profile).to_owned();
    let (fr, en, fr_flag, refused) = tokio::task::spawn_blocking(move || {
        let fr = console_prints(&p, &[], &[]).0;
        let en = console_prints(&p, &[("LANG", "en_CA.UTF-8")], &[]).0;
        let fr_flag = console_prints(&p, &[("LANG", "en_CA.UTF-8")], &["--lang", "fr"]).0;
        let refused = run(
            "filet",
            &["--profile", &p, "console", "--listen", "0.0.0.0:0"],
        );
        (fr, en, fr_flag, refused)
    })
    .await
    .unwrap();
    assert!(
        fr.contains("Ouvrez cette adresse à usage unique"),
        "no locale: French: {fr}"
    );
    assert!(
        en.contains("Open this one-time address"),
        "an English locale: {en}"
    );
    assert!(
        fr_flag.contains("Ouvrez cette adresse"),
        "--lang fr wins over the locale: {fr_flag}"
    );
    assert_eq!(refused.code, Some(4), "{}", refused.stderr);
    assert!(refused.stderr.contains("loopback"), "{}", refused.stderr);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filet_status_shows_who_acknowledged_for_the_senders_party() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let receipt = esm.post(runaway()).await.unwrap();
    let dpj = net.node("DPJ/RTS", relay.addr).await;
    dpj.ack(receipt.alert).await.unwrap();
    let id = receipt.alert.to_string();
    let out = filet_as(&net, "SPVQ/ESM", relay.addr, &["--json", "status", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let lines = v["recipients"].as_array().unwrap();
    let dpj_line = lines.iter().find(|l| l["unit"] == "DPJ/RTS").unwrap();
    assert!(
        dpj_line["acked_by"]
            .as_str()
            .unwrap()
            .starts_with("DPJ/RTS/"),
        "{dpj_line}"
    );
    let cjq = lines.iter().find(|l| l["unit"] == "CJQ/PIVOT").unwrap();
    assert!(cjq["acked_by"].is_null(), "{cjq}");
    let text = filet_as(&net, "SPVQ/ESM", relay.addr, &["status", &id]).await;
    assert!(
        text.stdout.contains("acknowledged by DPJ/RTS/"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("not acknowledged"), "{}", text.stdout);
    let other = filet_as(&net, "DPJ/RTS", relay.addr, &["status", &id]).await;
    assert_eq!(
        other.code,
        Some(3),
        "another party is refused: {}",
        other.stderr
    );
    for n in [esm, dpj] {
        n.close().await;
    }
    relay.stop().await;
}
