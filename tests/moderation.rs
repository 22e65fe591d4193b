//! Posts to moderated groups (RFC 5537 §3.5.1): one without Approved is
//! mailed to the group's moderator with the configured mail program, as
//! INN's nnrpd does, and not stored; an approved one is stored. LIST
//! MODERATORS (RFC 6048) shows who moderates what. A real server on
//! loopback, with a shell script standing in for sendmail.

mod common;

use std::path::Path;

use common::{TestServer, article};
use tidings::config::Config;

/// A mail program that keeps its arguments and the mail in `dir`, and
/// fails when `dir/fail` exists.
fn fake_mta(dir: &Path) -> String {
    let script = dir.join("mta.sh");
    let d = dir.display();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -e {d}/fail ] && {{ echo refused >&2; exit 75; }}\n\
             echo \"$@\" > {d}/args\ncat > {d}/mail\n"
        ),
    )
    .expect("write script");
    let mut perms = std::fs::metadata(&script).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).expect("chmod");
    script.display().to_string()
}

async fn server() -> TestServer {
    let mut s = TestServer::start().await;
    let mta = fake_mta(s.dir.path());
    let text = format!(
        "[moderation]\nmta = [\"{mta}\", \"-oi\"]\n\
         [[moderation.moderator]]\ngroups = \"local.announce\"\naddress = \"announce@example.com\"\n\
         [[moderation.moderator]]\ngroups = \"local.*,!local.general\"\naddress = \"%s@moderators.example\"\n"
    );
    let mut config = s.config.clone();
    config.moderation = Config::parse(&text).expect("moderation").moderation;
    s.server_mut().reload(config);
    let store = s.server().store();
    for g in ["local.announce", "local.general", "local.test"] {
        store.set_group(g, Some('m'), None).await.expect("m");
    }
    s
}

/// Where the fake mail program keeps what it got.
fn mta_dir(s: &TestServer) -> &Path {
    s.dir.path()
}

#[tokio::test]
async fn a_post_to_a_moderated_group_is_mailed_to_its_moderator() {
    let s = server().await;
    let mut c = s.client().await;
    let status = c
        .post(&article(
            "local.general,local.announce",
            "please approve",
            "Dear moderator,\r\n.hello\r\n",
        ))
        .await;
    // It goes to the moderator of the first moderated group, as in INN:
    // local.general has none, so the post is refused.
    assert!(status.starts_with("441 "), "{status}");
    assert!(status.contains("no moderator address"), "{status}");

    let status = c
        .post(&article(
            "local.announce,local.general",
            "please approve",
            "Dear moderator,\r\n.hello\r\n",
        ))
        .await;
    assert!(status.starts_with("240 "), "{status}");
    assert!(
        status.contains("mailed to the moderator of local.announce"),
        "{status}"
    );
    let id = status.split_whitespace().nth(2).expect("id").to_owned();
    let dir = mta_dir(&s);
    let args = std::fs::read_to_string(dir.join("args")).expect("mta ran");
    assert_eq!(args.trim(), "-oi announce@example.com");
    let mail = std::fs::read_to_string(dir.join("mail")).expect("mail");
    assert!(mail.starts_with("To: announce@example.com\n"), "{mail}");
    assert!(mail.contains("\nSubject: please approve\n"), "{mail}");
    assert!(mail.contains(&format!("\nMessage-ID: {id}\n")), "{mail}");
    assert!(mail.ends_with("\n\nDear moderator,\n.hello\n"), "{mail:?}");
    assert!(!mail.contains('\r'), "local mail has LF line ends");
    for injected in ["Path:", "Injection-Date:", "Injection-Info:"] {
        assert!(!mail.contains(injected), "{injected} in {mail}");
    }
    // Not stored: the moderator posts it, approved, as it came.
    assert!(c.cmd(&format!("STAT {id}")).await.starts_with("430 "));
    assert!(c.cmd("GROUP local.announce").await.starts_with("211 0 "));
    let mut approved = String::from("Approved: announce@example.com\r\n");
    for line in mail.lines().skip(1) {
        approved.push_str(line);
        approved.push_str("\r\n");
    }
    let status = c.post(&approved).await;
    assert_eq!(status, format!("240 Article received {id}"));
    assert!(c.cmd("GROUP local.announce").await.starts_with("211 1 "));

    // %s: the group's name with dashes.
    let status = c.post(&article("local.test", "t", "x\r\n")).await;
    assert!(status.starts_with("240 "), "{status}");
    let args = std::fs::read_to_string(dir.join("args")).expect("mta ran");
    assert_eq!(args.trim(), "-oi local-test@moderators.example");

    s.stop().await;
}

#[tokio::test]
async fn a_mail_program_that_fails_makes_the_post_fail() {
    let s = server().await;
    std::fs::write(mta_dir(&s).join("fail"), "").expect("fail");
    let mut c = s.client().await;
    let status = c.post(&article("local.announce", "t", "x\r\n")).await;
    assert!(status.starts_with("441 "), "{status}");
    assert!(
        status.contains("cannot mail the moderator of local.announce"),
        "{status}"
    );
    s.stop().await;
}

#[tokio::test]
async fn list_moderators_shows_the_moderators_file() {
    let s = server().await;
    let mut c = s.client().await;
    let (status, lines) = c.cmd_block("LIST MODERATORS", "215").await;
    assert!(status.starts_with("215"), "{status}");
    assert_eq!(
        lines,
        [
            "local.announce:announce@example.com",
            "local.*,!local.general:%s@moderators.example"
        ]
    );
    s.stop().await;
}
