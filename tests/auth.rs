//! Logging in (RFC 4643): AUTHINFO USER/PASS and SASL PLAIN over real TCP,
//! login required before reading, passwords refused where they would
//! travel in clear (483), the failed-login throttle, `tidings user`, and
//! Python's nntplib logging in as a real client.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Client, TestServer, article};
use tidings::config::Config;
use tokio::io::AsyncWriteExt;

async fn with_user(f: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::start_with(f).await;
    server.add_user("alice", "s3cret!").await;
    server
}

fn code(line: &str) -> &str {
    line.get(..3).unwrap_or(line)
}

#[tokio::test]
async fn user_and_pass_log_in_and_wrong_or_unknown_fail_alike() {
    let server = with_user(|_| {}).await;
    let mut c = server.client().await;
    let (_, caps) = c.cmd_block("CAPABILITIES", "101").await;
    assert!(caps.contains(&"AUTHINFO USER SASL".to_owned()), "{caps:?}");
    assert!(caps.contains(&"SASL PLAIN".to_owned()), "{caps:?}");

    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "482");
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    let wrong = c.cmd("AUTHINFO PASS nope").await;
    assert_eq!(code(&wrong), "481");
    assert_eq!(code(&c.cmd("AUTHINFO USER mallory").await), "381");
    let unknown = c.cmd("AUTHINFO PASS s3cret!").await;
    assert_eq!(
        unknown, wrong,
        "an unknown user answers as a wrong password"
    );

    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "281");
    // Logged in: AUTHINFO is no longer offered or accepted.
    let (_, caps) = c.cmd_block("CAPABILITIES", "101").await;
    assert!(!caps.iter().any(|l| l.starts_with("AUTHINFO")), "{caps:?}");
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "502");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "502");

    // Posts carry the account in Injection-Info.
    let status = c.post(&article("local.test", "signed", "hi\r\n")).await;
    assert_eq!(code(&status), "240", "{status}");
    c.cmd("GROUP local.test").await;
    let (_, head) = c.cmd_block("HEAD 1", "221").await;
    let info = head
        .iter()
        .find(|l| l.starts_with("Injection-Info:"))
        .expect("Injection-Info");
    assert!(info.contains("posting-account=\"alice\""), "{info}");
    server.stop().await;
}

#[tokio::test]
async fn sasl_plain_logs_in_with_its_initial_response() {
    let server = with_user(|_| {}).await;
    let mut c = server.client().await;
    // "\0alice\0wrong", "\0alice\0s3cret!"
    assert_eq!(
        code(&c.cmd("AUTHINFO SASL PLAIN AGFsaWNlAHdyb25n").await),
        "481"
    );
    assert_eq!(
        code(&c.cmd("AUTHINFO SASL PLAIN bm90IHBsYWlu").await),
        "501"
    );
    assert_eq!(code(&c.cmd("AUTHINFO SASL CRAM-MD5").await), "503");
    assert_eq!(
        code(&c.cmd("AUTHINFO SASL PLAIN AGFsaWNlAHMzY3JldCE=").await),
        "281"
    );
    assert_eq!(
        code(&c.cmd("AUTHINFO SASL PLAIN AGFsaWNlAHMzY3JldCE=").await),
        "502"
    );
    server.stop().await;
}

#[tokio::test]
async fn where_login_is_required_only_login_commands_are_served_before_it() {
    let server = with_user(|c| c.auth.required = true).await;
    let mut c = server.client().await;
    for line in [
        "GROUP local.test",
        "LIST",
        "ARTICLE <x@y>",
        "POST",
        "OVER 1-",
    ] {
        assert_eq!(code(&c.cmd(line).await), "480", "{line}");
    }
    assert_eq!(code(&c.cmd("DATE").await), "111");
    let (status, _) = c.cmd_block("CAPABILITIES", "101").await;
    assert_eq!(code(&status), "101");
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "281");
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    // A new connection starts logged out (nothing carries over).
    let mut d = server.client().await;
    assert_eq!(code(&d.cmd("GROUP local.test").await), "480");
    server.stop().await;
}

/// A TAKETHIS is followed by its article whatever the answer (RFC 4644
/// §2.5): refused for want of a login, its article is still read as an
/// article, so lines in it that look like commands are never run.
#[tokio::test]
async fn a_takethis_refused_for_want_of_login_does_not_run_its_article_as_commands() {
    let server = with_user(|c| c.auth.required = true).await;
    let mut c = server.client().await;
    let body = "AUTHINFO USER alice\r\nAUTHINFO PASS s3cret!\r\nQUIT\r\n";
    let text = article("local.test", "smuggled", body);
    c.send(format!("TAKETHIS <smuggled@example.org>\r\n{text}.\r\nDATE\r\n").as_bytes())
        .await;
    assert_eq!(code(&c.line().await), "480");
    // The next answer is DATE's: the article's lines were not commands
    // (they would have logged in, then closed the connection).
    assert_eq!(code(&c.line().await), "111");
    assert_eq!(
        code(&c.cmd("GROUP local.test").await),
        "480",
        "still logged out"
    );
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "281");
    assert_eq!(
        code(&c.cmd("GROUP local.test").await),
        "211",
        "nothing stored"
    );
    assert_eq!(
        code(&c.cmd("STAT <smuggled@example.org>").await),
        "430",
        "nothing stored"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_password_is_refused_with_483_where_it_would_travel_in_clear() {
    let server = with_user(|c| {
        c.auth.plaintext_from = vec!["127.0.0.1".parse().expect("cidr")];
    })
    .await;
    let mut remote = Client::connect_from("127.0.0.2", server.addr).await;
    let (_, caps) = remote.cmd_block("CAPABILITIES", "101").await;
    assert!(caps.contains(&"AUTHINFO".to_owned()), "{caps:?}");
    assert!(
        !caps.iter().any(|l| l.starts_with("AUTHINFO USER")),
        "{caps:?}"
    );
    assert_eq!(code(&remote.cmd("AUTHINFO USER alice").await), "483");
    assert_eq!(code(&remote.cmd("AUTHINFO PASS s3cret!").await), "483");
    assert_eq!(
        code(&remote.cmd("AUTHINFO SASL PLAIN AGFsaWNlAHMzY3JldCE=").await),
        "483"
    );
    // The trusted address may log in.
    let mut local = server.client().await;
    assert_eq!(code(&local.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&local.cmd("AUTHINFO PASS s3cret!").await), "281");
    server.stop().await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let server = with_user(|c| c.auth.max_failures_per_minute = 2).await;
    let mut c = Client::connect_from("127.0.0.4", server.addr).await;
    for _ in 0..2 {
        assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
        assert_eq!(code(&c.cmd("AUTHINFO PASS guess").await), "481");
    }
    // Even the right password is not tried now, on any connection from it.
    let mut again = Client::connect_from("127.0.0.4", server.addr).await;
    assert_eq!(code(&again.cmd("AUTHINFO USER alice").await), "381");
    let refused = again.cmd("AUTHINFO PASS s3cret!").await;
    assert_eq!(code(&refused), "481");
    assert!(refused.contains("too many"), "{refused}");
    // Another address is not affected.
    let mut other = Client::connect_from("127.0.0.5", server.addr).await;
    assert_eq!(code(&other.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&other.cmd("AUTHINFO PASS s3cret!").await), "281");
    server.stop().await;
}

/// `tidings user` on the same database as a running server; passwords come
/// from standard input, never the command line.
#[tokio::test]
async fn the_user_commands_manage_who_may_log_in() {
    let server = TestServer::start().await;
    let config = server.dir.path().join("users.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndatabase = {:?}\n",
            server.db_path().display().to_string()
        ),
    )
    .expect("config");
    let run = |args: Vec<&'static str>, stdin: &'static str| {
        let config = config.clone();
        async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
                .arg("--config")
                .arg(&config)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut input = child.stdin.take().expect("stdin");
            input.write_all(stdin.as_bytes()).await.expect("write");
            drop(input);
            let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
                .await
                .expect("in time")
                .expect("ran");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, out, err) = run(vec!["user", "list"], "").await;
    assert!(ok, "{err}");
    assert!(out.starts_with("no users: "), "{out}");
    let (ok, out, _) = run(vec!["user", "list", "--json"], "").await;
    assert!(ok && out.trim() == "[]", "{out}");
    let (ok, _, err) = run(vec!["user", "add", "bob"], "hunter2\n").await;
    assert!(ok, "{err}");
    let (ok, out, _) = run(vec!["user", "list"], "").await;
    assert!(ok && out.starts_with("bob "), "{out}");
    let (ok, _, err) = run(vec!["user", "add", "bob"], "other\n").await;
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(vec!["user", "add", "has space"], "x\n").await;
    assert!(!ok && err.contains("invalid user name"), "{err}");
    let (ok, _, err) = run(vec!["user", "add", "carol"], "two words\n").await;
    assert!(!ok && err.contains("without spaces"), "{err}");

    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("AUTHINFO USER bob").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS hunter2").await), "281");

    let (ok, _, err) = run(vec!["user", "passwd", "bob"], "correct-horse\n").await;
    assert!(ok, "{err}");
    let mut d = server.client().await;
    assert_eq!(code(&d.cmd("AUTHINFO USER bob").await), "381");
    assert_eq!(code(&d.cmd("AUTHINFO PASS hunter2").await), "481");
    assert_eq!(code(&d.cmd("AUTHINFO USER bob").await), "381");
    assert_eq!(code(&d.cmd("AUTHINFO PASS correct-horse").await), "281");

    let (ok, out, _) = run(vec!["user", "list", "--json"], "").await;
    assert!(ok);
    let users: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(users[0]["name"], "bob");

    let (ok, _, err) = run(vec!["user", "remove", "bob"], "").await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(vec!["user", "remove", "bob"], "").await;
    assert!(!ok && err.contains("no such user"), "{err}");
    let mut e = server.client().await;
    assert_eq!(code(&e.cmd("AUTHINFO USER bob").await), "381");
    assert_eq!(code(&e.cmd("AUTHINFO PASS correct-horse").await), "481");
    server.stop().await;
}

/// Python's nntplib logs in (it sends AUTHINFO USER/PASS when told to) and
/// reads a group that requires login.
#[tokio::test]
async fn nntplib_logs_in_and_reads() {
    let server = with_user(|c| c.auth.required = true).await;
    let script = r#"
import sys, warnings
warnings.simplefilter("ignore")
import nntplib
host, port = sys.argv[1], int(sys.argv[2])
try:
    nntplib.NNTP(host, port, user="alice", password="wrong", readermode=False)
    sys.exit("a wrong password was accepted")
except nntplib.NNTPPermanentError as e:
    assert str(e).startswith("481"), e
except nntplib.NNTPTemporaryError as e:
    assert str(e).startswith("481"), e
s = nntplib.NNTP(host, port, user="alice", password="s3cret!", readermode=False)
resp, count, first, last, name = s.group("local.test")
assert resp.startswith("211"), resp
s.quit()
print("ok")
"#;
    common::python([
        "-c".to_owned(),
        script.to_owned(),
        server.addr.ip().to_string(),
        server.addr.port().to_string(),
    ])
    .await;
    server.stop().await;
}
