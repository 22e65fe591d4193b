//! Structure-aware fuzzing of the two parsers that take network input: the
//! command line parser and the article checks. Inputs are built from valid
//! commands and articles, then mutated (bytes flipped, inserted, deleted,
//! lines duplicated or folded), so the parsers are driven deep rather than
//! refusing at the first byte.
//!
//! CI runs a few thousand cases; run it longer by hand with e.g.
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz`.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tidings::article::{self, InjectionContext, cancel_lock};
use tidings::wire::parse::parse_command;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const COMMANDS: &[&str] = &[
    "ARTICLE <a@b>",
    "ARTICLE 12",
    "BODY",
    "CAPABILITIES",
    "CHECK <x@y>",
    "DATE",
    "GROUP local.test",
    "HDR Subject 1-10",
    "HDR :bytes <a@b>",
    "HEAD 3",
    "HELP",
    "IHAVE <i@h>",
    "LAST",
    "LIST ACTIVE local.*,!local.test",
    "LIST ACTIVE.TIMES",
    "LIST HEADERS MSGID",
    "LIST OVERVIEW.FMT",
    "LISTGROUP local.test 5-",
    "MODE READER",
    "MODE STREAM",
    "NEWGROUPS 20261124 000000 GMT",
    "NEWNEWS local.* 261124 120000",
    "NEXT",
    "OVER 1-100",
    "OVER <m@id>",
    "POST",
    "QUIT",
    "STAT",
    "TAKETHIS <t@t>",
    "XHDR Subject 1-",
    "XOVER 10-20",
    "XPAT Subject 1-5 *foo* b?r",
    "XGTITLE local.*",
    "AUTHINFO USER someone",
    "AUTHINFO SASL PLAIN AGEAYg==",
    "COMPRESS DEFLATE",
    "STARTTLS",
];

/// One mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    DuplicateLine(usize),
    Fold(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b"\r\n".to_vec(),
        b"\n".to_vec(),
        b"\r".to_vec(),
        b"\0".to_vec(),
        b" ".to_vec(),
        b"\t".to_vec(),
        b":".to_vec(),
        b",".to_vec(),
        b"<".to_vec(),
        b">".to_vec(),
        b"@".to_vec(),
        b"!".to_vec(),
        b".".to_vec(),
        b"\xff\xfe".to_vec(),
        b"\r\n \r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"Newsgroups: ".to_vec(),
        b"Message-ID: <dup@x>\r\n".to_vec(),
        b"Path: tidings.test\r\n".to_vec(),
        "\u{e9}\u{2603}".as_bytes().to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::Fold),
    ]
}

fn apply(mut v: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = v.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !v.is_empty() {
                    let i = i % v.len();
                    v[i] = *b;
                }
            }
            Mutation::Insert(i, bytes) => {
                let i = i % (v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = i % len;
                let end = (i + n).min(v.len());
                if i < end {
                    v.drain(i..end);
                }
            }
            Mutation::DuplicateLine(i) | Mutation::Fold(i) => {
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(
                        v.iter()
                            .enumerate()
                            .filter(|(_, b)| **b == b'\n')
                            .map(|(k, _)| k + 1),
                    )
                    .filter(|&k| k < v.len())
                    .collect();
                if starts.is_empty() {
                    continue;
                }
                let s = starts[i % starts.len()];
                let e = v[s..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(v.len(), |p| s + p + 1);
                if matches!(m, Mutation::DuplicateLine(_)) {
                    let line = v[s..e].to_vec();
                    v.splice(e..e, line);
                } else if let Some(sp) = v[s..e].iter().position(|&b| b == b' ') {
                    // Fold the line at its first space.
                    v.splice(s + sp..s + sp, b"\r\n".iter().copied());
                }
            }
        }
    }
    v
}

const ARTICLE: &str = "Path: peer.example!origin.example\r\n\
From: Fuzz Tester <fuzz@example.com>\r\n\
Newsgroups: local.test,local.general\r\n\
Subject: a subject that is long enough to fold somewhere\r\n\
Message-ID: <fuzz.1@example.com>\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
References: <a@example.com> <b@example.com>\r\n\
Distribution: local\r\n\
\r\n\
Body line one\r\n\
.dot line\r\n\
\r\n\
last line\r\n";

/// A superseding cancel with Cancel-Lock and Cancel-Key of its own: what
/// the withdrawal and lock code reads and writes.
const WITHDRAWAL: &str = "Path: peer.example!origin.example\r\n\
From: Fuzz Tester <fuzz@example.com>\r\n\
Newsgroups: local.test\r\n\
Subject: cmsg cancel <fuzz.0@example.com>\r\n\
Message-ID: <fuzz.2@example.com>\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
Control: cancel <fuzz.0@example.com>\r\n\
Supersedes: <fuzz.0@example.com>\r\n\
Approved: fuzz@example.com\r\n\
Cancel-Lock: sha1:bNXHc6ohSmeHaRHHW56BIWZJt+4= sha256:AAAA\r\n\
Cancel-Key: sha256:s/pmK/3grrz++29ce2/mQydzJuc=\r\n\
\r\n\
cancelled\r\n";

static SECRETS: std::sync::LazyLock<cancel_lock::Secrets> =
    std::sync::LazyLock::new(|| cancel_lock::Secrets {
        user: b"fuzz user secret".to_vec(),
        admin: b"fuzz admin secret".to_vec(),
    });

fn cx() -> InjectionContext<'static> {
    InjectionContext {
        path_identity: "tidings.test",
        domain: "tidings.test",
        now: Utc
            .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
            .single()
            .expect("time"),
        posting_host: "127.0.0.1",
        user: None,
        cancel_secrets: None,
        offered_id: None,
    }
}

/// What a stored article must satisfy: it is a valid article a peer would
/// take from us, its body is byte-identical, and its overview line agrees
/// with it.
fn check_stored(p: &article::Prepared) {
    let xref = "tidings.test local.test:1";
    let (stored, line) = p.finish(xref);
    assert_eq!(stored.len(), p.stored_len(xref));
    let (_, body) = article::split(&stored);
    assert_eq!(body, &p.body[..]);
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 8, "overview line {line:?}");
    assert_eq!(fields[3], p.message_id.as_str());
    assert_eq!(fields[5], stored.len().to_string());
    assert!(!line.contains('\r') && !line.contains('\n'));
    // A peer relaying what we stored accepts it (our own identity is in
    // Path now, so use another one).
    let relayed = article::prepare_relay(&stored, Some(&p.message_id), "peer.test");
    assert!(
        relayed.is_ok(),
        "stored article refused on relay: {relayed:?}"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn command_parser_survives_mutated_commands(
        base in prop::sample::select(COMMANDS),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let line = apply(base.as_bytes().to_vec(), &mutations);
        let _ = parse_command(&line);
    }

    #[test]
    fn post_checks_survive_mutated_articles(
        mutations in prop::collection::vec(mutation(), 0..6),
    ) {
        let raw = apply(ARTICLE.as_bytes().to_vec(), &mutations);
        // Posted articles keep no Path loop check but add headers.
        if let Ok(p) = article::prepare_post(&raw, &cx()) {
            check_stored(&p);
        }
    }

    #[test]
    fn relay_checks_survive_mutated_articles(
        mutations in prop::collection::vec(mutation(), 0..6),
    ) {
        let raw = apply(ARTICLE.as_bytes().to_vec(), &mutations);
        if let Ok(p) = article::prepare_relay(&raw, None, "tidings.test") {
            prop_assert_eq!(p.path.first().map(String::as_str), Some("tidings.test"));
            check_stored(&p);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A post made here always carries the operator's lock, once, whatever
    /// Cancel-Lock and Cancel-Key fields the client wrote; and nothing the
    /// withdrawal and control readers meet makes them fail.
    #[test]
    fn locks_and_withdrawals_survive_mutated_articles(
        mutations in prop::collection::vec(mutation(), 0..6),
    ) {
        let raw = apply(WITHDRAWAL.as_bytes().to_vec(), &mutations);
        let cx = InjectionContext {
            user: Some("fuzzer"),
            cancel_secrets: Some(&*SECRETS),
            ..cx()
        };
        if let Ok(p) = article::prepare_post(&raw, &cx) {
            check_stored(&p);
            let (stored, _) = p.finish("tidings.test control.cancel:1");
            let locks = article::header_value(&stored, "Cancel-Lock").unwrap_or_default();
            prop_assert!(
                cancel_lock::opens(&SECRETS.admin_key(p.message_id.as_str()), &locks),
                "no operator's lock in {locks:?}"
            );
            let ours = SECRETS.lock(Some("fuzzer"), p.message_id.as_str());
            prop_assert_eq!(locks.matches(ours.as_str()).count(), 1);
            if let Some(keys) = article::header_value(&stored, "Cancel-Key") {
                let _ = cancel_lock::opens(&keys, &locks);
            }
            let _ = tidings::control::request(&stored);
        }
        if let Ok(p) = article::prepare_relay(&raw, None, "tidings.test") {
            let (stored, _) = p.finish("tidings.test control.cancel:1");
            let _ = tidings::control::request(&stored);
        }
    }
}

#[test]
fn the_unmutated_article_is_accepted_both_ways() {
    let p = article::prepare_relay(ARTICLE.as_bytes(), None, "tidings.test").expect("relay");
    check_stored(&p);
    let p = article::prepare_post(ARTICLE.as_bytes(), &cx()).expect("post");
    check_stored(&p);
}
