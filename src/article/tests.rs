//! Known-answer tests for POST and relay, and properties over arbitrary input.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn cx() -> InjectionContext<'static> {
    InjectionContext {
        path_identity: "news.example.com",
        domain: "example.com",
        now: Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap(),
        posting_host: "192.0.2.7",
        user: None,
        cancel_secrets: None,
        offered_id: None,
    }
}

const POST: &[u8] = b"From: Joe <joe@example.org>\r\n\
Newsgroups: misc.test\r\n\
Subject: hello\r\n\
\r\n\
Body line 1\r\n\
Body line 2\r\n";

const RELAY: &[u8] = b"Path: peer.example.net!origin.example.org!not-for-mail\r\n\
From: Joe <joe@example.org>\r\n\
Newsgroups: misc.test,alt.test\r\n\
Subject: hello\r\n\
Message-ID: <abc@example.org>\r\n\
Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\
Xref: peer.example.net misc.test:12\r\n\
\r\n\
body\r\n";

fn head_str(p: &Prepared) -> String {
    String::from_utf8_lossy(&p.head).into_owned()
}

fn bad(r: Result<Prepared, ArticleError>) -> String {
    match r {
        Err(ArticleError::BadHeader(m)) => m,
        other => panic!("expected BadHeader, got {other:?}"),
    }
}

fn replace(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8_lossy(raw)
        .replacen(from, to, 1)
        .into_bytes()
}

// --- POST ---

#[test]
fn post_fills_in_message_id_date_path_and_injection_headers() {
    let p = prepare_post(POST, &cx()).unwrap();
    let head = head_str(&p);
    assert!(head.starts_with("Path: news.example.com!.POSTED!not-for-mail\r\n"));
    assert!(head.contains("\r\nFrom: Joe <joe@example.org>\r\nNewsgroups: misc.test\r\n"));
    assert!(head.contains(&format!("\r\nMessage-ID: {}\r\n", p.message_id)));
    assert!(p.message_id.as_str().ends_with("@example.com>"));
    assert!(head.contains("\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"));
    assert!(head.contains("\r\nInjection-Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"));
    assert!(head.ends_with("\r\nInjection-Info: news.example.com; posting-host=\"192.0.2.7\"\r\n"));
    assert_eq!(p.path, ["news.example.com", ".POSTED", "not-for-mail"]);
    assert_eq!(p.body, b"Body line 1\r\nBody line 2\r\n");
    assert_eq!(p.body_lines, 2);
    assert_eq!(
        p.overview,
        format!(
            "hello\tJoe <joe@example.org>\tTue, 24 Nov 2026 10:00:00 +0000\t{}\t",
            p.message_id
        )
    );
}

#[test]
fn post_injection_info_names_the_account() {
    let mut c = cx();
    c.user = Some("joe \"the\" user");
    let p = prepare_post(POST, &c).unwrap();
    assert!(head_str(&p).contains(
        "Injection-Info: news.example.com; posting-host=\"192.0.2.7\"; \
         posting-account=\"joe \\\"the\\\" user\"\r\n"
    ));
}

#[test]
fn generated_message_ids_are_unique() {
    let a = prepare_post(POST, &cx()).unwrap().message_id;
    let b = prepare_post(POST, &cx()).unwrap().message_id;
    assert_ne!(a, b);
}

#[test]
fn a_folded_field_counts_as_one_header() {
    let raw = b"Path: a!b\r\nFrom: Joe <joe@example.org>\r\nNewsgroups: misc.test\r\n\
Subject: a long\r\n\tfolded\r\n subject\r\nMessage-ID: <c@example.org>\r\n\
Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nX-Empty: \r\n\r\nbody\r\n\r\nX-Not: a header\r\n";
    // Path, From, Newsgroups, Subject, Message-ID, Date, X-Empty; the
    // body's lines are not headers.
    let p = prepare_relay(raw, None, "us.example").unwrap();
    assert_eq!(p.header_count(), 7);
}

#[test]
fn post_keeps_the_clients_message_id_date_and_folding() {
    let raw = b"From: Joe <joe@example.org>\r\n\
Newsgroups: misc.test\r\n\
Subject: a long\r\n\tfolded subject\r\n\
Message-ID: <mine@example.org>\r\n\
Date: Tue, 24 Nov 2026 09:59:00 +0000\r\n\
References: <a@b>\r\n <c@d>\r\n\
\r\n\
x\r\n";
    let p = prepare_post(raw, &cx()).unwrap();
    let head = head_str(&p);
    assert_eq!(p.message_id.as_str(), "<mine@example.org>");
    assert!(head.contains("Subject: a long\r\n\tfolded subject\r\n"));
    assert_eq!(head.matches("Message-ID:").count(), 1);
    assert_eq!(head.matches("\r\nDate:").count(), 1);
    assert_eq!(
        p.overview,
        "a long folded subject\tJoe <joe@example.org>\tTue, 24 Nov 2026 09:59:00 +0000\t\
         <mine@example.org>\t<a@b> <c@d>"
    );
}

#[test]
fn post_prepends_to_an_existing_path() {
    let raw = [
        b"Path: gateway.example.org!not-for-mail\r\n".as_slice(),
        POST,
    ]
    .concat();
    let p = prepare_post(&raw, &cx()).unwrap();
    let head = head_str(&p);
    assert!(
        head.starts_with("Path: news.example.com!.POSTED!gateway.example.org!not-for-mail\r\n")
    );
    assert_eq!(head.matches("Path:").count(), 1);
    assert_eq!(
        p.path,
        [
            "news.example.com",
            ".POSTED",
            "gateway.example.org",
            "not-for-mail"
        ]
    );
}

#[test]
fn post_refuses_an_already_posted_path() {
    let raw = [
        b"Path: other.example!.POSTED!not-for-mail\r\n".as_slice(),
        POST,
    ]
    .concat();
    assert!(bad(prepare_post(&raw, &cx())).contains("already injected"));
}

#[test]
fn post_requires_from_newsgroups_subject_in_that_order() {
    let no_from = replace(POST, "From: Joe <joe@example.org>\r\n", "");
    assert_eq!(
        prepare_post(&no_from, &cx()),
        Err(ArticleError::MissingHeader("From"))
    );
    let no_groups = replace(POST, "Newsgroups: misc.test\r\n", "");
    let neither = replace(&no_groups, "Subject: hello\r\n", "");
    assert_eq!(
        prepare_post(&neither, &cx()),
        Err(ArticleError::MissingHeader("Newsgroups"))
    );
    let no_subject = replace(POST, "Subject: hello\r\n", "");
    assert_eq!(
        prepare_post(&no_subject, &cx()),
        Err(ArticleError::MissingHeader("Subject"))
    );
    let empty_subject = replace(POST, "Subject: hello", "Subject:  ");
    assert!(bad(prepare_post(&empty_subject, &cx())).contains("empty Subject"));
}

#[test]
fn post_refuses_a_bad_message_id() {
    for id in ["nobrackets@x", "<no-at-sign>", "<a b@c>", "<>"] {
        let raw = [format!("Message-ID: {id}\r\n").as_bytes(), POST].concat();
        assert!(
            bad(prepare_post(&raw, &cx())).starts_with("invalid Message-ID"),
            "{id}"
        );
    }
}

#[test]
fn post_refuses_a_bad_or_future_date() {
    let raw = [b"Date: someday\r\n".as_slice(), POST].concat();
    assert!(bad(prepare_post(&raw, &cx())).starts_with("invalid Date"));
    let raw = [
        b"Date: Wed, 25 Nov 2026 10:00:01 +0000\r\n".as_slice(),
        POST,
    ]
    .concat();
    assert!(bad(prepare_post(&raw, &cx())).contains("24 hours in the future"));
    // Exactly 24 hours ahead is still allowed, and so is the past.
    let raw = [
        b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n".as_slice(),
        POST,
    ]
    .concat();
    assert!(prepare_post(&raw, &cx()).is_ok());
    let raw = [b"Date: 1 Jan 90 00:00 GMT\r\n".as_slice(), POST].concat();
    assert!(prepare_post(&raw, &cx()).is_ok());
}

#[test]
fn post_refuses_an_injected_article() {
    let raw = [
        b"Injection-Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n".as_slice(),
        POST,
    ]
    .concat();
    assert_eq!(
        bad(prepare_post(&raw, &cx())),
        "article already injected (has Injection-Date)"
    );
}

#[test]
fn post_removes_xref_and_injection_info() {
    let raw = [
        b"Xref: evil.example misc.test:1\r\nInjection-Info: evil.example;\r\n posting-host=\"x\"\r\n"
            .as_slice(),
        POST,
    ]
    .concat();
    let p = prepare_post(&raw, &cx()).unwrap();
    let head = head_str(&p);
    assert!(!head.contains("evil"));
    assert!(!head.contains("Xref"));
    assert_eq!(head.matches("Injection-Info:").count(), 1);
}

#[test]
fn post_refuses_lines_over_998_octets() {
    let long = format!("X-Long: {}\r\n", "a".repeat(991));
    let raw = [long.as_bytes(), POST].concat();
    assert!(bad(prepare_post(&raw, &cx())).contains("998"));
    let ok = format!("X-Long: {}\r\n", "a".repeat(990));
    let raw = [ok.as_bytes(), POST].concat();
    assert!(prepare_post(&raw, &cx()).is_ok());
}

#[test]
fn duplicate_single_headers_are_refused() {
    for name in [
        "From",
        "Subject",
        "Newsgroups",
        "Message-ID",
        "Date",
        "Path",
        "References",
    ] {
        let line = match name {
            "Message-ID" => "Message-ID: <x@y>\r\n".to_owned(),
            "Date" => "Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n".to_owned(),
            "References" => "References: <x@y>\r\n".to_owned(),
            _ => format!("{}: x\r\n", name.to_lowercase()),
        };
        let raw = [line.as_bytes(), line.as_bytes(), RELAY].concat();
        assert_eq!(
            bad(prepare_relay(&raw, None, "news.example.com")),
            format!("duplicate {name} header")
        );
        let raw = [line.as_bytes(), line.as_bytes(), POST].concat();
        assert_eq!(
            bad(prepare_post(&raw, &cx())),
            format!("duplicate {name} header")
        );
    }
}

#[test]
fn newsgroups_are_checked_and_deduplicated() {
    let raw = replace(
        POST,
        "Newsgroups: misc.test",
        "Newsgroups: misc.test , alt.test,\r\n misc.test,comp.lang.rust",
    );
    let p = prepare_post(&raw, &cx()).unwrap();
    let names: Vec<_> = p.newsgroups.iter().map(GroupName::as_str).collect();
    assert_eq!(names, ["misc.test", "alt.test", "comp.lang.rust"]);

    for bad_list in ["misc.test,,alt.test", "misc.test,", "misc*", "a..b", "a b"] {
        let raw = replace(
            POST,
            "Newsgroups: misc.test",
            &format!("Newsgroups: {bad_list}"),
        );
        assert!(
            bad(prepare_post(&raw, &cx())).starts_with("invalid Newsgroups"),
            "{bad_list}"
        );
    }
    let raw = replace(POST, "Newsgroups: misc.test", "Newsgroups:");
    assert!(bad(prepare_post(&raw, &cx())).contains("empty Newsgroups"));
}

#[test]
fn distribution_and_control_are_reported() {
    let raw = [
        b"Distribution: local, fr\r\n\t,nl\r\nControl:  cancel <x@y> \r\n".as_slice(),
        POST,
    ]
    .concat();
    let p = prepare_post(&raw, &cx()).unwrap();
    assert_eq!(p.distributions, ["local", "fr", "nl"]);
    assert_eq!(p.control.as_deref(), Some("cancel <x@y>"));
    let p = prepare_post(POST, &cx()).unwrap();
    assert!(p.distributions.is_empty());
    assert_eq!(p.control, None);
}

#[test]
fn header_names_are_case_insensitive() {
    let raw = b"FROM: a@b\r\nnewsgroups: misc.test\r\nsUbJeCt: s\r\nmessage-id: <q@r>\r\n\r\n";
    let p = prepare_post(raw, &cx()).unwrap();
    assert_eq!(p.message_id.as_str(), "<q@r>");
    assert!(p.overview.starts_with("s\ta@b\t"));
}

#[test]
fn eight_bit_bodies_and_headers_are_kept_byte_for_byte() {
    let body: Vec<u8> = (0u8..=255).filter(|&b| b != b'\r' && b != b'\n').collect();
    let body = [body.as_slice(), b"\r\n\xff\xfe\r\n.\r\nno final crlf"].concat();
    let head =
        "From: J\u{f6}rg <j@example.org>\r\nNewsgroups: misc.test\r\nSubject: \u{e9}t\u{e9}\r\n";
    let raw = [head.as_bytes(), b"Subject-Latin1: \xe9\r\n\r\n", &body].concat();
    let p = prepare_post(&raw, &cx()).unwrap();
    assert_eq!(p.body, body);
    assert_eq!(p.body_lines, 4);
    assert!(p.head.windows(19).any(|w| w == b"Subject-Latin1: \xe9\r\n"));
    assert!(
        p.overview
            .starts_with("\u{e9}t\u{e9}\tJ\u{f6}rg <j@example.org>\t")
    );
    let (article, _) = p.finish("news.example.com misc.test:1");
    assert_eq!(split(&article).1, body.as_slice());
}

#[test]
fn an_article_without_body_or_blank_line_gets_the_separator() {
    let raw = b"From: a@b\r\nNewsgroups: misc.test\r\nSubject: s\r\n";
    let p = prepare_post(raw, &cx()).unwrap();
    assert!(p.body.is_empty());
    assert_eq!(p.body_lines, 0);
    let (article, _) = p.finish("h g:1");
    assert!(article.ends_with(b"\r\nXref: h g:1\r\n\r\n"));
}

#[test]
fn malformed_articles_are_refused() {
    for raw in [
        &b" From: a@b\r\nNewsgroups: misc.test\r\nSubject: s\r\n\r\n"[..],
        b"From a@b\r\nNewsgroups: misc.test\r\nSubject: s\r\n\r\n",
        b"From: a@b\r\nNews groups: misc.test\r\nSubject: s\r\n\r\n",
        b"",
    ] {
        assert!(
            matches!(prepare_post(raw, &cx()), Err(ArticleError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert!(matches!(
            prepare_relay(raw, None, "x"),
            Err(ArticleError::Malformed(_))
        ));
    }
}

// --- relay ---

#[test]
fn relay_prepends_our_identity_and_drops_xref() {
    let p = prepare_relay(RELAY, None, "news.example.com").unwrap();
    let head = head_str(&p);
    assert!(head.starts_with(
        "Path: news.example.com!peer.example.net!origin.example.org!not-for-mail\r\nFrom:"
    ));
    assert!(!head.contains("Xref"));
    assert!(head.ends_with("Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n"));
    assert_eq!(
        p.path,
        [
            "news.example.com",
            "peer.example.net",
            "origin.example.org",
            "not-for-mail"
        ]
    );
    assert_eq!(p.message_id.as_str(), "<abc@example.org>");
    assert_eq!(p.newsgroups.len(), 2);
    assert_eq!(p.body, b"body\r\n");
    assert_eq!(
        p.overview,
        "hello\tJoe <joe@example.org>\tTue, 24 Nov 2026 09:00:00 +0000\t<abc@example.org>\t"
    );
}

#[test]
fn relay_keeps_a_folded_path_folded() {
    let raw = replace(
        RELAY,
        "Path: peer.example.net!",
        "Path: peer.example.net!\r\n ",
    );
    let p = prepare_relay(&raw, None, "us.example").unwrap();
    assert!(head_str(&p).starts_with("Path: us.example!peer.example.net!\r\n origin.example.org"));
    assert_eq!(p.path[1..3], ["peer.example.net", "origin.example.org"]);
}

#[test]
fn relay_detects_a_path_loop() {
    assert_eq!(
        prepare_relay(RELAY, None, "Origin.Example.ORG"),
        Err(ArticleError::PathLoop("origin.example.org".to_owned()))
    );
    // A diagnostic naming us is not a loop; nor is a longer name.
    assert!(prepare_relay(RELAY, None, "example.org").is_ok());
}

#[test]
fn relay_checks_the_offered_message_id() {
    let offered = MessageId::try_from("<abc@example.org>").unwrap();
    assert!(prepare_relay(RELAY, Some(&offered), "us").is_ok());
    let other = MessageId::try_from("<other@example.org>").unwrap();
    assert_eq!(
        prepare_relay(RELAY, Some(&other), "us"),
        Err(ArticleError::IdMismatch)
    );
}

#[test]
fn relay_requires_all_mandatory_headers() {
    for (line, name) in [
        (
            "Path: peer.example.net!origin.example.org!not-for-mail\r\n",
            "Path",
        ),
        ("From: Joe <joe@example.org>\r\n", "From"),
        ("Newsgroups: misc.test,alt.test\r\n", "Newsgroups"),
        ("Subject: hello\r\n", "Subject"),
        ("Message-ID: <abc@example.org>\r\n", "Message-ID"),
        ("Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n", "Date"),
    ] {
        let raw = replace(RELAY, line, "");
        assert_eq!(
            prepare_relay(&raw, None, "us"),
            Err(ArticleError::MissingHeader(name))
        );
    }
}

#[test]
fn relay_refuses_bad_values() {
    let raw = replace(RELAY, "<abc@example.org>", "<abc>");
    assert!(bad(prepare_relay(&raw, None, "us")).starts_with("invalid Message-ID"));
    let raw = replace(RELAY, "Tue, 24 Nov 2026", "Tue, 32 Nov 2026");
    assert!(bad(prepare_relay(&raw, None, "us")).starts_with("invalid Date"));
    let raw = replace(RELAY, "misc.test,alt.test", "misc.test,alt..test");
    assert!(bad(prepare_relay(&raw, None, "us")).starts_with("invalid Newsgroups"));
}

// --- finish, split, header_value ---

#[test]
fn finish_appends_xref_and_builds_the_overview_line() {
    let p = prepare_relay(RELAY, None, "us.example").unwrap();
    let xref = "us.example misc.test:7 alt.test:3";
    let (article, line) = p.finish(xref);
    assert_eq!(article.len(), p.stored_len(xref));
    let mut expected = p.head.clone();
    expected.extend_from_slice(b"Xref: us.example misc.test:7 alt.test:3\r\n\r\nbody\r\n");
    assert_eq!(article, expected);
    assert_eq!(
        line,
        format!("{}\t{}\t1\tXref: {xref}", p.overview, article.len())
    );
    assert_eq!(
        split(&article),
        (&article[..p.head.len() + xref.len() + 8], &b"body\r\n"[..])
    );
    assert_eq!(stored_overview(&article), line);
}

#[test]
fn overview_fields_are_sanitised() {
    let raw = replace(RELAY, "Subject: hello", "Subject: tab\there\r\n\tand fold");
    let p = prepare_relay(&raw, None, "us").unwrap();
    assert!(p.overview.starts_with("tab here and fold\t"));
    assert_eq!(p.overview.split('\t').count(), 5);
}

#[test]
fn split_is_defined_at_the_first_blank_line() {
    assert_eq!(
        split(b"A: 1\r\n\r\nb\r\n\r\nc"),
        (&b"A: 1\r\n"[..], &b"b\r\n\r\nc"[..])
    );
    assert_eq!(split(b"A: 1\r\n\r\n"), (&b"A: 1\r\n"[..], &b""[..]));
    assert_eq!(split(b"A: 1\r\n"), (&b"A: 1\r\n"[..], &b""[..]));
    assert_eq!(split(b"\r\nbody"), (&b""[..], &b"body"[..]));
    assert_eq!(split(b""), (&b""[..], &b""[..]));
}

#[test]
fn header_value_reads_the_stored_head_only() {
    let article = b"Path: a!b\r\nX-Folded: one\r\n\ttwo\r\nx-dup: first\r\nX-Dup: second\r\n\r\nX-Body: no\r\n";
    assert_eq!(
        header_value(article, "x-folded").as_deref(),
        Some("one two")
    );
    assert_eq!(header_value(article, "X-DUP").as_deref(), Some("first"));
    assert_eq!(header_value(article, "X-Body"), None);
    assert_eq!(header_value(article, "Missing"), None);
    assert_eq!(
        header_value(b"Empty:\r\n\r\n", "empty").as_deref(),
        Some("")
    );
}

// --- properties ---

/// Printable header text, sometimes 8-bit, never CR/LF/NUL.
fn text() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 1..40)
        .prop_filter("needs a non-blank octet", |v| {
            v.iter().any(|&c| c != b' ' && c != b'\t')
        })
}

fn valid_article() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        text(),
        text(),
        "[a-z]{1,8}(\\.[a-z0-9]{1,8}){0,3}",
        "[a-z0-9]{1,20}",
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(subject, from, group, id, body, blank)| {
            let mut raw = Vec::new();
            raw.extend_from_slice(b"Path: peer.example!not-for-mail\r\nSubject: ");
            raw.extend_from_slice(&subject);
            raw.extend_from_slice(b"\r\nFrom: ");
            raw.extend_from_slice(&from);
            raw.extend_from_slice(b" <poster@example.org>");
            raw.extend_from_slice(format!("\r\nNewsgroups: {group}\r\n").as_bytes());
            raw.extend_from_slice(format!("Message-ID: <{id}@example.org>\r\n").as_bytes());
            raw.extend_from_slice(b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n");
            // With no body, the blank line may be missing.
            if blank || !body.is_empty() {
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(&body);
            (raw, body)
        })
}

proptest! {
    #[test]
    fn prepare_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = prepare_post(&raw, &cx());
        let _ = prepare_relay(&raw, None, "news.example.com");
        let _ = header_value(&raw, "Subject");
        let _ = split(&raw);
    }

    #[test]
    fn prepare_never_panics_on_headerish_input(
        lines in proptest::collection::vec(
            prop_oneof![
                Just(b"From: a@b".to_vec()),
                Just(b"Newsgroups: a.b, c".to_vec()),
                Just(b"Subject: s".to_vec()),
                Just(b"Date: 1 Jan 2026 00:00 GMT".to_vec()),
                Just(b"Message-ID: <x@y>".to_vec()),
                Just(b"Path: a!b".to_vec()),
                Just(b" folded".to_vec()),
                Just(Vec::new()),
                proptest::collection::vec(any::<u8>(), 0..30),
            ],
            0..12,
        )
    ) {
        let raw: Vec<u8> = lines.iter().flat_map(|l| [l.as_slice(), b"\r\n"].concat()).collect();
        let _ = prepare_post(&raw, &cx());
        let _ = prepare_relay(&raw, None, "a");
    }

    #[test]
    fn finish_keeps_the_body((raw, body) in valid_article(), xref in "[a-z.]{1,10}( [a-z.]{1,10}:[0-9]{1,5}){1,3}") {
        for p in [
            prepare_relay(&raw, None, "news.example.com").unwrap(),
            prepare_post(&raw, &cx()).unwrap(),
        ] {
            prop_assert_eq!(&p.body, &body);
            let (article, line) = p.finish(&xref);
            prop_assert_eq!(article.len(), p.stored_len(&xref));
            prop_assert_eq!(split(&article).1, body.as_slice());
            let tail = format!("\tXref: {}", xref);
            prop_assert!(line.ends_with(&tail));
            prop_assert_eq!(line.split('\t').count(), 8);
            prop_assert_eq!(header_value(&article, "Xref"), Some(xref.clone()));
            // An overview row rebuilt from the log is the row written.
            prop_assert_eq!(stored_overview(&article), line);
        }
    }
}

#[test]
fn a_post_whose_from_has_no_address_is_refused() {
    let cx = cx();
    for from in [
        "not an address",
        "<>",
        "user@",
        "@example.com",
        "Name <user at example.com>",
    ] {
        let raw = format!("From: {from}\r\nNewsgroups: a.b\r\nSubject: s\r\n\r\nbody\r\n");
        let err = prepare_post(raw.as_bytes(), &cx).unwrap_err();
        assert!(err.to_string().contains("user@domain"), "{from}: {err}");
    }
    for from in [
        "user@example.com",
        "Some Name <user@example.com>",
        "user@example.com (Some Name)",
        "\"Quoted, Name\" <u.ser+tag@sub.example.com>",
    ] {
        let raw = format!("From: {from}\r\nNewsgroups: a.b\r\nSubject: s\r\n\r\nbody\r\n");
        assert!(prepare_post(raw.as_bytes(), &cx).is_ok(), "{from}");
    }
}

#[test]
fn body_lines_counts_crlf_lines_and_an_unterminated_last_one() {
    use super::inject::body_lines;
    assert_eq!(body_lines(b""), 0);
    assert_eq!(body_lines(b"\r\n\r\n"), 2);
    assert_eq!(body_lines(b"a\r\n\r\nb"), 3);
    assert_eq!(body_lines(b"a\rb\nc\r\n"), 1);
    // A bare LF first, and a CR before a CRLF.
    assert_eq!(body_lines(b"\n"), 1);
    assert_eq!(body_lines(b"\n\r\r\n"), 1);
}
