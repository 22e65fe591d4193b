//! Reading and posting over real TCP against a real server and SQLite file,
//! exchange by exchange (RFC 3977).

mod common;

use common::{Client, TestServer, article, posted_id};
use tidings::wire::types::GroupName;

#[tokio::test]
async fn greeting_says_posting_allowed() {
    let server = TestServer::start().await;
    let c = server.client().await;
    assert!(c.greeting.starts_with("200 "), "{}", c.greeting);
}

#[tokio::test]
async fn a_posted_article_is_served_back_byte_identical() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = "first line\r\n.leading dot\r\n\r\n8-bit: caf\u{e9}\r\n";
    let status = c.post(&article("local.test", "hello", body)).await;
    let id = posted_id(&status);
    assert_eq!(c.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    let status = c.cmd("BODY 1").await;
    assert_eq!(status, format!("222 1 {id}"));
    assert_eq!(c.block_bytes().await, body.as_bytes());
    let status = c.cmd(&format!("ARTICLE {id}")).await;
    assert_eq!(status, format!("220 0 {id}"));
    let whole = c.block_bytes().await;
    assert!(whole.ends_with(body.as_bytes()));
    server.stop().await;
}

// ---- helpers -------------------------------------------------------------

/// The three-digit code of a status line.
fn code(status: &str) -> &str {
    status.get(..3).unwrap_or(status)
}

/// Posts a minimal article and returns its message-id.
async fn post_ok(c: &mut Client, groups: &str, subject: &str, body: &str) -> String {
    posted_id(&c.post(&article(groups, subject, body)).await)
}

/// Posts `n` articles to `group` with subjects "subject 1", "subject 2", ...
/// and returns their message-ids in order.
async fn post_n(c: &mut Client, group: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 1..=n {
        let body = format!("body of {i}\r\n");
        ids.push(post_ok(c, group, &format!("subject {i}"), &body).await);
    }
    ids
}

/// POSTs raw article bytes (CRLF lines, not yet dot-stuffed) and returns the
/// final status line.
async fn post_raw(c: &mut Client, raw: &[u8]) -> String {
    let status = c.cmd("POST").await;
    assert_eq!(code(&status), "340", "{status}");
    let mut data = Vec::new();
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    data.extend_from_slice(b".\r\n");
    c.send(&data).await;
    c.line().await
}

/// Starts a server with articles 1..=n in local.test, and a client that has
/// not selected a group. Returns the message-ids too.
async fn with_articles(n: usize) -> (TestServer, Client, Vec<String>) {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let ids = post_n(&mut c, "local.test", n).await;
    (server, c, ids)
}

/// The value of header `name` in a HEAD/ARTICLE block's lines.
fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{}: ", name.to_ascii_lowercase());
    lines
        .iter()
        .take_while(|l| !l.is_empty())
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| &l[prefix.len()..])
}

// ---- CAPABILITIES, MODE READER, QUIT, HELP, DATE (RFC 3977 §5, §7.1, §7.2) --

#[tokio::test]
async fn capabilities_list_version_2_and_only_what_is_offered() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, caps) = c.cmd_block("CAPABILITIES", "101").await;
    assert_eq!(code(&status), "101", "{status}");
    assert_eq!(caps[0], "VERSION 2", "VERSION must be the first line");
    for wanted in ["READER", "POST", "OVER MSGID", "HDR", "NEWNEWS"] {
        assert!(
            caps.iter().any(|l| l == wanted),
            "{wanted} missing: {caps:?}"
        );
    }
    let list = caps
        .iter()
        .find(|l| l.starts_with("LIST "))
        .expect("LIST capability");
    for keyword in [
        "ACTIVE",
        "ACTIVE.TIMES",
        "COUNTS",
        "DISTRIB.PATS",
        "HEADERS",
        "MOTD",
        "NEWSGROUPS",
        "OVERVIEW.FMT",
        "SUBSCRIPTIONS",
    ] {
        assert!(
            list.split_whitespace().any(|k| k == keyword),
            "LIST lacks {keyword}: {list}"
        );
    }
    // AUTHINFO is offered (tests/auth.rs); TLS and transit are not.
    for absent in ["IHAVE", "STREAMING", "STARTTLS", "MODE-READER"] {
        assert!(
            !caps
                .iter()
                .any(|l| l.split_whitespace().next() == Some(absent)),
            "{absent} is not offered: {caps:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn capabilities_without_posting_do_not_list_post() {
    let server = TestServer::start_with(|c| c.server.posting = false).await;
    let mut c = server.client().await;
    let (_, caps) = c.cmd_block("CAPABILITIES", "101").await;
    assert!(caps.iter().any(|l| l == "READER"));
    assert!(!caps.iter().any(|l| l == "POST"), "{caps:?}");
    server.stop().await;
}

#[tokio::test]
async fn mode_reader_answers_200_when_posting_is_allowed() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("MODE READER").await), "200");
    // The session goes on as a reader.
    assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

#[tokio::test]
async fn quit_answers_205_and_closes_the_connection() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("QUIT").await), "205");
    assert_eq!(c.try_line().await, None, "connection closed after 205");
    server.stop().await;
}

#[tokio::test]
async fn help_answers_100_with_a_text_block() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, text) = c.cmd_block("HELP", "100").await;
    assert_eq!(code(&status), "100", "{status}");
    assert!(!text.is_empty());
    assert!(text.iter().any(|l| l.starts_with("ARTICLE")), "{text:?}");
    // The block is over: the next command is answered normally.
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn date_answers_111_with_the_current_utc_time() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let status = c.cmd("DATE").await;
    let stamp = status.strip_prefix("111 ").expect(&status);
    assert_eq!(stamp.len(), 14, "yyyymmddhhmmss: {stamp}");
    let when = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
        .expect("a valid date")
        .and_utc();
    let drift = (chrono::Utc::now() - when).num_seconds().abs();
    assert!(drift <= 5, "DATE is {drift} s off");
    server.stop().await;
}

// ---- GROUP, LISTGROUP, LAST, NEXT (RFC 3977 §6.1) --------------------------

#[tokio::test]
async fn group_answers_211_with_count_low_high_and_name() {
    let (server, mut c, _) = with_articles(3).await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 3 1 3 local.test");
    server.stop().await;
}

#[tokio::test]
async fn group_of_an_empty_newsgroup_has_low_one_above_high() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(
        c.cmd("GROUP local.general").await,
        "211 0 1 0 local.general"
    );
    server.stop().await;
}

#[tokio::test]
async fn group_of_an_unknown_newsgroup_is_411_and_keeps_the_selection() {
    let (server, mut c, ids) = with_articles(1).await;
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    assert_eq!(code(&c.cmd("GROUP no.such.group").await), "411");
    // RFC 3977 §6.1.1.2: on failure the selected group is unchanged.
    assert_eq!(c.cmd("STAT").await, format!("223 1 {}", ids[0]));
    server.stop().await;
}

#[tokio::test]
async fn listgroup_with_a_group_lists_its_numbers_and_selects_it() {
    let (server, mut c, ids) = with_articles(3).await;
    let (status, numbers) = c.cmd_block("LISTGROUP local.test", "211").await;
    assert_eq!(status, "211 3 1 3 local.test list follows");
    assert_eq!(numbers, ["1", "2", "3"]);
    // The group is now selected and the current article is the first.
    assert_eq!(c.cmd("STAT").await, format!("223 1 {}", ids[0]));
    server.stop().await;
}

#[tokio::test]
async fn listgroup_without_a_group_uses_the_selected_one() {
    let (server, mut c, _) = with_articles(2).await;
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    let (status, numbers) = c.cmd_block("LISTGROUP", "211").await;
    assert!(status.starts_with("211 2 1 2 local.test"), "{status}");
    assert_eq!(numbers, ["1", "2"]);
    server.stop().await;
}

#[tokio::test]
async fn listgroup_without_any_group_selected_is_412() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("LISTGROUP").await), "412");
    server.stop().await;
}

#[tokio::test]
async fn listgroup_of_an_unknown_newsgroup_is_411() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("LISTGROUP no.such.group").await), "411");
    server.stop().await;
}

#[tokio::test]
async fn listgroup_of_an_empty_newsgroup_is_an_empty_list() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, numbers) = c.cmd_block("LISTGROUP local.general", "211").await;
    assert!(status.starts_with("211 0 1 0 local.general"), "{status}");
    assert!(numbers.is_empty(), "{numbers:?}");
    server.stop().await;
}

#[tokio::test]
async fn listgroup_ranges_select_n_n_onwards_and_n_to_m() {
    let (server, mut c, _) = with_articles(5).await;
    let (_, one) = c.cmd_block("LISTGROUP local.test 3", "211").await;
    assert_eq!(one, ["3"]);
    let (_, onwards) = c.cmd_block("LISTGROUP local.test 3-", "211").await;
    assert_eq!(onwards, ["3", "4", "5"]);
    let (_, between) = c.cmd_block("LISTGROUP local.test 2-4", "211").await;
    assert_eq!(between, ["2", "3", "4"]);
    let (_, beyond) = c.cmd_block("LISTGROUP local.test 4-99", "211").await;
    assert_eq!(beyond, ["4", "5"]);
    // RFC 3977 §6.1.2.2: a range whose end is below its start is empty.
    let (status, none) = c.cmd_block("LISTGROUP local.test 4-2", "211").await;
    assert!(status.starts_with("211 5 1 5 local.test"), "{status}");
    assert!(none.is_empty(), "{none:?}");
    server.stop().await;
}

#[tokio::test]
async fn next_and_last_move_the_current_article_and_answer_223() {
    let (server, mut c, ids) = with_articles(3).await;
    c.cmd("GROUP local.test").await;
    assert_eq!(
        c.cmd("NEXT").await,
        format!("223 2 {} Article found", ids[1])
    );
    assert_eq!(
        c.cmd("NEXT").await,
        format!("223 3 {} Article found", ids[2])
    );
    assert_eq!(c.cmd("STAT").await, format!("223 3 {}", ids[2]));
    assert_eq!(
        c.cmd("LAST").await,
        format!("223 2 {} Article found", ids[1])
    );
    assert_eq!(c.cmd("STAT").await, format!("223 2 {}", ids[1]));
    server.stop().await;
}

#[tokio::test]
async fn next_at_the_last_article_is_421_and_last_at_the_first_is_422() {
    let (server, mut c, ids) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    assert_eq!(code(&c.cmd("LAST").await), "422");
    assert_eq!(c.cmd("STAT").await, format!("223 1 {}", ids[0]));
    assert_eq!(code(&c.cmd("NEXT").await), "223");
    assert_eq!(code(&c.cmd("NEXT").await), "421");
    // A failed NEXT leaves the current article where it was.
    assert_eq!(c.cmd("STAT").await, format!("223 2 {}", ids[1]));
    server.stop().await;
}

#[tokio::test]
async fn next_and_last_in_an_empty_newsgroup_are_420() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd("GROUP local.general").await;
    assert_eq!(code(&c.cmd("NEXT").await), "420");
    assert_eq!(code(&c.cmd("LAST").await), "420");
    server.stop().await;
}

#[tokio::test]
async fn next_and_last_without_a_group_are_412() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("NEXT").await), "412");
    assert_eq!(code(&c.cmd("LAST").await), "412");
    server.stop().await;
}

// ---- ARTICLE, HEAD, BODY, STAT (RFC 3977 §6.2) ----------------------------

#[tokio::test]
async fn article_head_body_and_stat_by_number_answer_with_number_and_id() {
    let (server, mut c, ids) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    let (status, whole) = c.cmd_block("ARTICLE 2", "220").await;
    assert_eq!(status, format!("220 2 {}", ids[1]));
    assert_eq!(header(&whole, "Subject"), Some("subject 2"));
    assert_eq!(whole.last().map(String::as_str), Some("body of 2"));
    let (status, head) = c.cmd_block("HEAD 2", "221").await;
    assert_eq!(status, format!("221 2 {}", ids[1]));
    assert_eq!(header(&head, "Message-ID"), Some(ids[1].as_str()));
    let (status, body) = c.cmd_block("BODY 2", "222").await;
    assert_eq!(status, format!("222 2 {}", ids[1]));
    assert_eq!(body, ["body of 2"]);
    assert_eq!(c.cmd("STAT 1").await, format!("223 1 {}", ids[0]));
    server.stop().await;
}

#[tokio::test]
async fn article_by_number_makes_it_the_current_article() {
    let (server, mut c, ids) = with_articles(3).await;
    c.cmd("GROUP local.test").await;
    c.cmd_block("HEAD 3", "221").await;
    assert_eq!(c.cmd("STAT").await, format!("223 3 {}", ids[2]));
    assert_eq!(c.cmd("STAT 2").await, format!("223 2 {}", ids[1]));
    assert_eq!(c.cmd("STAT").await, format!("223 2 {}", ids[1]));
    server.stop().await;
}

#[tokio::test]
async fn article_by_message_id_reports_number_0_and_leaves_the_current_article() {
    let (server, mut c, ids) = with_articles(3).await;
    c.cmd("GROUP local.test").await;
    for (verb, ok) in [("ARTICLE", "220"), ("HEAD", "221"), ("BODY", "222")] {
        let (status, block) = c.cmd_block(&format!("{verb} {}", ids[2]), ok).await;
        assert_eq!(status, format!("{ok} 0 {}", ids[2]));
        assert!(!block.is_empty());
    }
    assert_eq!(
        c.cmd(&format!("STAT {}", ids[2])).await,
        format!("223 0 {}", ids[2])
    );
    assert_eq!(c.cmd("STAT").await, format!("223 1 {}", ids[0]));
    server.stop().await;
}

#[tokio::test]
async fn article_by_message_id_works_without_a_group() {
    let (server, mut c, ids) = with_articles(1).await;
    let (status, _) = c.cmd_block(&format!("ARTICLE {}", ids[0]), "220").await;
    assert_eq!(status, format!("220 0 {}", ids[0]));
    server.stop().await;
}

#[tokio::test]
async fn article_without_argument_serves_the_current_article() {
    let (server, mut c, ids) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    let (status, _) = c.cmd_block("ARTICLE", "220").await;
    assert_eq!(status, format!("220 1 {}", ids[0]));
    c.cmd("NEXT").await;
    let (status, head) = c.cmd_block("HEAD", "221").await;
    assert_eq!(status, format!("221 2 {}", ids[1]));
    assert_eq!(header(&head, "Subject"), Some("subject 2"));
    let (status, body) = c.cmd_block("BODY", "222").await;
    assert_eq!(status, format!("222 2 {}", ids[1]));
    assert_eq!(body, ["body of 2"]);
    assert_eq!(c.cmd("STAT").await, format!("223 2 {}", ids[1]));
    server.stop().await;
}

#[tokio::test]
async fn article_by_number_or_current_without_a_group_is_412() {
    let (server, mut c, _) = with_articles(1).await;
    for line in ["ARTICLE 1", "HEAD 1", "BODY 1", "STAT 1", "ARTICLE", "STAT"] {
        assert_eq!(code(&c.cmd(line).await), "412", "{line}");
    }
    server.stop().await;
}

#[tokio::test]
async fn article_without_argument_in_an_empty_newsgroup_is_420() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd("GROUP local.general").await;
    for line in ["ARTICLE", "HEAD", "BODY", "STAT"] {
        assert_eq!(code(&c.cmd(line).await), "420", "{line}");
    }
    server.stop().await;
}

#[tokio::test]
async fn article_by_a_number_not_in_the_group_is_423() {
    let (server, mut c, ids) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    for line in ["ARTICLE 3", "HEAD 99", "BODY 3", "STAT 12345"] {
        assert_eq!(code(&c.cmd(line).await), "423", "{line}");
    }
    // The current article did not move.
    assert_eq!(c.cmd("STAT").await, format!("223 1 {}", ids[0]));
    server.stop().await;
}

#[tokio::test]
async fn article_by_an_unknown_message_id_is_430() {
    let (server, mut c, _) = with_articles(1).await;
    for verb in ["ARTICLE", "HEAD", "BODY", "STAT"] {
        let line = format!("{verb} <no-such-article@example.com>");
        assert_eq!(code(&c.cmd(&line).await), "430", "{line}");
    }
    server.stop().await;
}

#[tokio::test]
async fn head_has_the_headers_only_without_the_blank_line() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let id = post_ok(&mut c, "local.test", "heads", "BODY TEXT\r\n\r\nmore\r\n").await;
    let status = c.cmd(&format!("HEAD {id}")).await;
    assert_eq!(code(&status), "221");
    let head = c.block_bytes().await;
    assert!(head.ends_with(b"\r\n"), "lines end in CRLF");
    assert!(
        !head.windows(4).any(|w| w == b"\r\n\r\n"),
        "no blank line in HEAD: {:?}",
        String::from_utf8_lossy(&head)
    );
    assert!(!head.starts_with(b"\r\n"));
    let text = String::from_utf8_lossy(&head);
    assert!(!text.contains("BODY TEXT"), "{text}");
    assert!(text.contains("Subject: heads\r\n"), "{text}");
    // ARTICLE is HEAD, a blank line, and BODY.
    c.cmd(&format!("ARTICLE {id}")).await;
    let whole = c.block_bytes().await;
    c.cmd(&format!("BODY {id}")).await;
    let body = c.block_bytes().await;
    let mut joined = head.clone();
    joined.extend_from_slice(b"\r\n");
    joined.extend_from_slice(&body);
    assert_eq!(whole, joined);
    server.stop().await;
}

#[tokio::test]
async fn body_is_byte_identical_with_dots_empty_lines_and_8_bit_octets() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body: &[u8] = b"\r\n.\r\n..\r\n.starts with a dot\r\n\r\n\r\n\
        latin-1 \xe9\xe8 and utf-8 \xc3\xa9 and \xff\xfe\r\n\ttab line\r\n. \r\nlast\r\n";
    let mut raw =
        b"From: T <t@example.com>\r\nNewsgroups: local.test\r\nSubject: bytes\r\n\r\n".to_vec();
    raw.extend_from_slice(body);
    let status = post_raw(&mut c, &raw).await;
    let id = posted_id(&status);
    assert_eq!(c.cmd(&format!("BODY {id}")).await, format!("222 0 {id}"));
    assert_eq!(c.block_bytes().await, body);
    c.cmd("GROUP local.test").await;
    assert_eq!(c.cmd("BODY 1").await, format!("222 1 {id}"));
    assert_eq!(c.block_bytes().await, body);
    server.stop().await;
}

// ---- POST (RFC 3977 §6.3.1, RFC 5537 §3.5) --------------------------------

#[tokio::test]
async fn post_is_prompted_with_340_and_accepted_with_240() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let status = c.cmd("POST").await;
    assert_eq!(code(&status), "340", "{status}");
    c.send(
        b"From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: hi\r\n\r\nhello\r\n.\r\n",
    )
    .await;
    let status = c.line().await;
    assert_eq!(code(&status), "240", "{status}");
    let id = posted_id(&status);
    assert_eq!(c.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    assert_eq!(c.cmd("STAT 1").await, format!("223 1 {id}"));
    server.stop().await;
}

#[tokio::test]
async fn a_post_without_message_id_gets_the_one_its_340_recommended() {
    // INN's nnrpd gives such an article the message-id of its 340 answer,
    // so a newsreader that kept it (to find its own post, or a follow-up
    // to it) knows the article by it.
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let recommended = |status: &str| {
        assert!(
            status.starts_with("340 Ok, recommended Message-ID <"),
            "{status}"
        );
        status.rsplit(' ').next().expect("an id").to_owned()
    };
    let first = recommended(&c.cmd("POST").await);
    // Refused: the next POST recommends another id, and an article
    // without one gets that.
    c.send(b"Newsgroups: local.test\r\nSubject: no From\r\n\r\nx\r\n.\r\n")
        .await;
    assert_eq!(code(&c.line().await), "441");
    let second = recommended(&c.cmd("POST").await);
    assert_ne!(second, first);
    c.send(
        b"From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: hi\r\n\r\nhello\r\n.\r\n",
    )
    .await;
    assert_eq!(c.line().await, format!("240 Article received {second}"));
    assert_eq!(
        c.cmd(&format!("STAT {second}")).await,
        format!("223 0 {second}")
    );
    assert_eq!(code(&c.cmd(&format!("STAT {first}")).await), "430");
    server.stop().await;
}

#[tokio::test]
async fn post_keeps_the_posters_message_id() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "Message-ID: <mine.1@example.com>\r\nFrom: A <a@example.com>\r\n\
               Newsgroups: local.test\r\nSubject: mine\r\n\r\nx\r\n";
    let status = c.post(raw).await;
    assert_eq!(posted_id(&status), "<mine.1@example.com>");
    assert_eq!(
        c.cmd("STAT <mine.1@example.com>").await,
        "223 0 <mine.1@example.com>"
    );
    server.stop().await;
}

async fn assert_refused(c: &mut Client, raw: &str, reason_contains: &str) {
    let status = c.post(raw).await;
    assert_eq!(code(&status), "441", "{status}");
    assert!(
        status
            .to_ascii_lowercase()
            .contains(&reason_contains.to_ascii_lowercase()),
        "441 should say {reason_contains:?}: {status}"
    );
}

#[tokio::test]
async fn posting_without_from_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_refused(
        &mut c,
        "Newsgroups: local.test\r\nSubject: s\r\n\r\nb\r\n",
        "From",
    )
    .await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

#[tokio::test]
async fn posting_without_subject_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "From: A <a@example.com>\r\nNewsgroups: local.test\r\n\r\nb\r\n";
    assert_refused(&mut c, raw, "Subject").await;
    server.stop().await;
}

#[tokio::test]
async fn posting_without_newsgroups_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "From: A <a@example.com>\r\nSubject: s\r\n\r\nb\r\n";
    assert_refused(&mut c, raw, "Newsgroups").await;
    server.stop().await;
}

#[tokio::test]
async fn posting_to_an_unknown_newsgroup_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_refused(
        &mut c,
        &article("no.such.group", "s", "b\r\n"),
        "no.such.group",
    )
    .await;
    // One unknown group among known ones refuses the whole article.
    let raw = article("local.test,no.such.group", "s", "b\r\n");
    assert_refused(&mut c, &raw, "no.such.group").await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

#[tokio::test]
async fn posting_to_a_newsgroup_with_status_n_is_refused_with_441() {
    let server = TestServer::start().await;
    server
        .server()
        .store()
        .set_group("local.announce", Some('n'), None)
        .await
        .expect("set status");
    let mut c = server.client().await;
    assert_refused(
        &mut c,
        &article("local.announce", "s", "b\r\n"),
        "local.announce",
    )
    .await;
    assert_eq!(
        c.cmd("GROUP local.announce").await,
        "211 0 1 0 local.announce"
    );
    server.stop().await;
}

#[tokio::test]
async fn posting_to_a_moderated_newsgroup_without_approved_is_refused_with_441() {
    let server = TestServer::start().await;
    server
        .server()
        .store()
        .set_group("local.announce", Some('m'), None)
        .await
        .expect("set status");
    let mut c = server.client().await;
    assert_refused(
        &mut c,
        &article("local.announce", "s", "b\r\n"),
        "moderated",
    )
    .await;
    // With an Approved header (the moderator's own post) it goes in.
    let raw = "From: M <mod@example.com>\r\nNewsgroups: local.announce\r\nSubject: s\r\n\
               Approved: mod@example.com\r\n\r\nb\r\n";
    assert_eq!(code(&c.post(raw).await), "240");
    server.stop().await;
}

#[tokio::test]
async fn posting_a_duplicate_message_id_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "Message-ID: <twice@example.com>\r\nFrom: A <a@example.com>\r\n\
               Newsgroups: local.test\r\nSubject: s\r\n\r\nb\r\n";
    assert_eq!(code(&c.post(raw).await), "240");
    assert_refused(&mut c, raw, "<twice@example.com>").await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    server.stop().await;
}

#[tokio::test]
async fn posting_with_a_date_more_than_a_day_ahead_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: s\r\n\
               Date: Fri, 01 Jan 2100 00:00:00 +0000\r\n\r\nb\r\n";
    assert_refused(&mut c, raw, "Date").await;
    server.stop().await;
}

#[tokio::test]
async fn posting_an_article_already_injected_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: s\r\n\
               Injection-Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n";
    assert_refused(&mut c, raw, "injected").await;
    server.stop().await;
}

#[tokio::test]
async fn posting_an_invalid_message_id_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "Message-ID: <no-at-sign>\r\nFrom: A <a@example.com>\r\n\
               Newsgroups: local.test\r\nSubject: s\r\n\r\nb\r\n";
    assert_refused(&mut c, raw, "Message-ID").await;
    server.stop().await;
}

#[tokio::test]
async fn posting_a_header_line_over_998_octets_is_refused_with_441() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = article("local.test", &"s".repeat(1200), "b\r\n");
    let status = c.post(&raw).await;
    assert_eq!(code(&status), "441", "{status}");
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn posting_a_too_large_article_is_refused_with_441_and_the_session_goes_on() {
    let server = TestServer::start_with(|c| c.limits.max_article_size = 2048).await;
    let mut c = server.client().await;
    let big = "x".repeat(70) + "\r\n";
    let body = big.repeat(50);
    assert_refused(&mut c, &article("local.test", "big", &body), "too large").await;
    assert_eq!(code(&c.cmd("DATE").await), "111");
    assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    // A small one still goes in.
    post_ok(&mut c, "local.test", "small", "fits\r\n").await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    server.stop().await;
}

#[tokio::test]
async fn posting_disabled_greets_201_and_refuses_post_with_440() {
    let server = TestServer::start_with(|c| c.server.posting = false).await;
    let mut c = server.client().await;
    assert_eq!(code(&c.greeting), "201", "{}", c.greeting);
    assert_eq!(code(&c.cmd("MODE READER").await), "201");
    assert_eq!(code(&c.cmd("POST").await), "440");
    // 440 is final: no article is expected; the session goes on.
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn a_cross_post_gets_a_number_in_each_group_and_one_xref() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    post_ok(&mut c, "local.test", "first", "b\r\n").await;
    let id = post_ok(&mut c, "local.test,local.general", "both", "b\r\n").await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 2 1 2 local.test");
    assert_eq!(c.cmd("STAT 2").await, format!("223 2 {id}"));
    assert_eq!(
        c.cmd("GROUP local.general").await,
        "211 1 1 1 local.general"
    );
    assert_eq!(c.cmd("STAT 1").await, format!("223 1 {id}"));
    let (_, head) = c.cmd_block(&format!("HEAD {id}"), "221").await;
    let xrefs: Vec<_> = head.iter().filter(|l| l.starts_with("Xref:")).collect();
    assert_eq!(xrefs.len(), 1, "{head:?}");
    assert_eq!(xrefs[0], "Xref: tidings.local local.test:2 local.general:1");
    server.stop().await;
}

#[tokio::test]
async fn posting_adds_path_date_message_id_and_injection_headers() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let id = post_ok(&mut c, "local.test", "injected", "b\r\n").await;
    let (_, head) = c.cmd_block(&format!("HEAD {id}"), "221").await;
    let path = header(&head, "Path").expect("Path added");
    assert!(path.starts_with("tidings.local!.POSTED"), "{path}");
    assert_eq!(header(&head, "Message-ID"), Some(id.as_str()));
    assert!(id.ends_with("@tidings.local>"), "{id}");
    let date = header(&head, "Date").expect("Date added");
    assert!(
        tidings::article::parse_date(date.as_bytes()).is_some(),
        "Date parses: {date}"
    );
    let injection_date = header(&head, "Injection-Date").expect("Injection-Date added");
    assert!(
        tidings::article::parse_date(injection_date.as_bytes()).is_some(),
        "{injection_date}"
    );
    let info = header(&head, "Injection-Info").expect("Injection-Info added");
    assert!(info.starts_with("tidings.local"), "{info}");
    assert!(info.contains("posting-host"), "{info}");
    server.stop().await;
}

#[tokio::test]
async fn posting_drops_a_forged_xref_and_injection_info() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: s\r\n\
               Xref: evil.example other.group:99\r\nInjection-Info: evil.example\r\n\r\nb\r\n";
    let id = posted_id(&c.post(raw).await);
    let (_, head) = c.cmd_block(&format!("HEAD {id}"), "221").await;
    let xrefs: Vec<_> = head.iter().filter(|l| l.starts_with("Xref:")).collect();
    assert_eq!(xrefs, ["Xref: tidings.local local.test:1"]);
    let infos: Vec<_> = head
        .iter()
        .filter(|l| l.starts_with("Injection-Info:"))
        .collect();
    assert_eq!(infos.len(), 1);
    assert!(
        infos[0].starts_with("Injection-Info: tidings.local"),
        "{infos:?}"
    );
    server.stop().await;
}

// ---- NEWGROUPS, NEWNEWS (RFC 3977 §7.3, §7.4) ------------------------------

#[tokio::test]
async fn newgroups_lists_groups_created_after_the_date_and_not_before() {
    let server = TestServer::start().await;
    let name = GroupName::try_from("local.brand-new").expect("name");
    server
        .server()
        .store()
        .add_group(&name, 'y', "new", "tester")
        .await
        .expect("add group");
    let mut c = server.client().await;
    let (status, groups) = c.cmd_block("NEWGROUPS 20000101 000000 GMT", "231").await;
    assert_eq!(code(&status), "231", "{status}");
    assert!(
        groups.contains(&"local.brand-new 0 1 y".to_owned()),
        "{groups:?}"
    );
    assert!(
        groups.iter().any(|l| l.starts_with("local.test ")),
        "{groups:?}"
    );
    // Two-digit year form, without GMT.
    let (_, groups) = c.cmd_block("NEWGROUPS 000101 000000", "231").await;
    assert!(groups.iter().any(|l| l.starts_with("local.brand-new ")));
    // All of them were created before 2099.
    let (status, groups) = c.cmd_block("NEWGROUPS 20990101 000000 GMT", "231").await;
    assert_eq!(code(&status), "231");
    assert!(groups.is_empty(), "{groups:?}");
    server.stop().await;
}

#[tokio::test]
async fn newnews_lists_new_message_ids_in_matching_groups() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let in_test = post_ok(&mut c, "local.test", "t", "b\r\n").await;
    let in_general = post_ok(&mut c, "local.general", "g", "b\r\n").await;
    let both = post_ok(&mut c, "local.test,local.general", "tg", "b\r\n").await;

    let (status, ids) = c
        .cmd_block("NEWNEWS local.test 20000101 000000 GMT", "230")
        .await;
    assert_eq!(code(&status), "230", "{status}");
    let mut ids_sorted = ids.clone();
    ids_sorted.sort();
    let mut want = vec![in_test.clone(), both.clone()];
    want.sort();
    assert_eq!(ids_sorted, want);

    // A cross-posted article is listed once.
    let (_, ids) = c
        .cmd_block("NEWNEWS local.* 20000101 000000 GMT", "230")
        .await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&in_general));

    let (_, ids) = c
        .cmd_block("NEWNEWS local.*,!local.test 20000101 000000 GMT", "230")
        .await;
    let mut ids_sorted = ids.clone();
    ids_sorted.sort();
    let mut want = vec![in_general.clone(), both.clone()];
    want.sort();
    assert_eq!(ids_sorted, want, "both is also in local.general");

    let (_, ids) = c
        .cmd_block("NEWNEWS other.* 20000101 000000 GMT", "230")
        .await;
    assert!(ids.is_empty(), "{ids:?}");
    server.stop().await;
}

#[tokio::test]
async fn newnews_since_a_date_in_the_future_is_an_empty_list() {
    let (server, mut c, _) = with_articles(2).await;
    let (status, ids) = c.cmd_block("NEWNEWS * 20990101 000000 GMT", "230").await;
    assert_eq!(code(&status), "230");
    assert!(ids.is_empty(), "{ids:?}");
    server.stop().await;
}

// ---- LIST (RFC 3977 §7.6, RFC 6048) ---------------------------------------

#[tokio::test]
async fn list_and_list_active_give_name_high_low_status() {
    let (server, mut c, _) = with_articles(2).await;
    let want = [
        "control 0 1 n",
        "control.cancel 0 1 n",
        "local.announce 0 1 y",
        "local.general 0 1 y",
        "local.test 2 1 y",
    ];
    let (status, bare) = c.cmd_block("LIST", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(bare, want);
    let (_, active) = c.cmd_block("LIST ACTIVE", "215").await;
    assert_eq!(active, want);
    server.stop().await;
}

#[tokio::test]
async fn list_active_with_a_wildmat_lists_only_matching_groups() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (_, groups) = c.cmd_block("LIST ACTIVE local.t*", "215").await;
    assert_eq!(groups, ["local.test 0 1 y"]);
    let (_, groups) = c.cmd_block("LIST ACTIVE local.*,!local.test", "215").await;
    assert_eq!(groups, ["local.announce 0 1 y", "local.general 0 1 y"]);
    let (status, groups) = c.cmd_block("LIST ACTIVE nothing.*", "215").await;
    assert_eq!(code(&status), "215");
    assert!(groups.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn list_active_shows_the_group_status() {
    let server = TestServer::start().await;
    let store = server.server().store();
    store
        .set_group("local.announce", Some('m'), None)
        .await
        .expect("m");
    store
        .set_group("local.general", Some('n'), None)
        .await
        .expect("n");
    let mut c = server.client().await;
    let (_, groups) = c.cmd_block("LIST ACTIVE", "215").await;
    assert_eq!(
        groups,
        [
            "control 0 1 n",
            "control.cancel 0 1 n",
            "local.announce 0 1 m",
            "local.general 0 1 n",
            "local.test 0 1 y"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn list_newsgroups_gives_name_tab_description() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, lines) = c.cmd_block("LIST NEWSGROUPS", "215").await;
    assert_eq!(code(&status), "215");
    assert!(
        lines.contains(&"local.test\tLocal test postings".to_owned()),
        "{lines:?}"
    );
    let (_, lines) = c.cmd_block("LIST NEWSGROUPS local.gen*", "215").await;
    assert_eq!(lines, ["local.general\tLocal general discussion"]);
    server.stop().await;
}

#[tokio::test]
async fn xgtitle_gives_the_descriptions_of_a_wildmat_or_of_the_selected_group() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // No wildmat and no group: nothing to describe (INN says 412 too).
    assert_eq!(code(&c.cmd("XGTITLE").await), "412");
    let (status, lines) = c.cmd_block("XGTITLE local.gen*", "282").await;
    assert_eq!(code(&status), "282");
    assert_eq!(lines, ["local.general\tLocal general discussion"]);
    // The same lines as LIST NEWSGROUPS, under another code.
    let (_, titles) = c.cmd_block("XGTITLE local.*", "282").await;
    let (_, newsgroups) = c.cmd_block("LIST NEWSGROUPS local.*", "215").await;
    assert!(titles.len() >= 2, "{titles:?}");
    assert_eq!(titles, newsgroups);
    let (_, none) = c.cmd_block("XGTITLE no.such.*", "282").await;
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    let (_, lines) = c.cmd_block("XGTITLE", "282").await;
    assert_eq!(lines, ["local.test\tLocal test postings"]);
    assert_eq!(code(&c.cmd("XGTITLE local.[").await), "501");
    assert_eq!(code(&c.cmd("XGTITLE a b").await), "501");
    server.stop().await;
}

#[tokio::test]
async fn list_active_times_gives_name_creation_time_and_creator() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, lines) = c.cmd_block("LIST ACTIVE.TIMES local.test", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields.len(), 3, "{lines:?}");
    assert_eq!(fields[0], "local.test");
    let created: i64 = fields[1].parse().expect("seconds since the epoch");
    assert!((chrono::Utc::now().timestamp() - created).abs() < 60);
    assert_eq!(fields[2], "tidings");
    server.stop().await;
}

#[tokio::test]
async fn list_overview_fmt_names_the_overview_fields_in_order() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, fields) = c.cmd_block("LIST OVERVIEW.FMT", "215").await;
    assert_eq!(code(&status), "215");
    // The metadata items :bytes and :lines under their compatibility names
    // (RFC 3977 §8.4.2), as INN gives them: slrn uses OVER only when the
    // first seven names, less their colon, are the old header names.
    assert_eq!(
        fields,
        [
            "Subject:",
            "From:",
            "Date:",
            "Message-ID:",
            "References:",
            "Bytes:",
            "Lines:",
            "Xref:full"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn list_headers_says_any_header_and_the_metadata_items() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, lines) = c.cmd_block("LIST HEADERS", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(lines, [":", ":bytes", ":lines"]);
    let (status, _) = c.cmd_block("LIST HEADERS MSGID", "215").await;
    assert_eq!(code(&status), "215");
    let (status, _) = c.cmd_block("LIST HEADERS RANGE", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(code(&c.cmd("LIST HEADERS BOGUS").await), "501");
    server.stop().await;
}

#[tokio::test]
async fn list_distrib_pats_is_an_empty_list() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, lines) = c.cmd_block("LIST DISTRIB.PATS", "215").await;
    assert_eq!(code(&status), "215");
    assert!(lines.is_empty(), "{lines:?}");
    server.stop().await;
}

#[tokio::test]
async fn list_counts_gives_name_high_low_count_status() {
    let (server, mut c, _) = with_articles(3).await;
    let (status, lines) = c.cmd_block("LIST COUNTS", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(
        lines,
        [
            "control 0 1 0 n",
            "control.cancel 0 1 0 n",
            "local.announce 0 1 0 y",
            "local.general 0 1 0 y",
            "local.test 3 1 3 y"
        ]
    );
    let (_, lines) = c.cmd_block("LIST COUNTS local.test", "215").await;
    assert_eq!(lines, ["local.test 3 1 3 y"]);
    server.stop().await;
}

#[tokio::test]
async fn list_motd_without_a_message_of_the_day_is_503() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("LIST MOTD").await), "503");
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn list_motd_gives_the_configured_text() {
    let server = TestServer::start_with(|c| {
        c.server.motd = "Welcome to tidings.\n.dot line\nBe nice.".to_owned();
    })
    .await;
    let mut c = server.client().await;
    let (status, lines) = c.cmd_block("LIST MOTD", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(lines, ["Welcome to tidings.", ".dot line", "Be nice."]);
    server.stop().await;
}

#[tokio::test]
async fn list_subscriptions_gives_the_configured_groups() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let (status, lines) = c.cmd_block("LIST SUBSCRIPTIONS", "215").await;
    assert_eq!(code(&status), "215");
    assert_eq!(lines, ["local.general", "local.announce"]);
    let (_, lines) = c.cmd_block("LIST SUBSCRIPTIONS *.ann*", "215").await;
    assert_eq!(lines, ["local.announce"]);
    server.stop().await;
}

#[tokio::test]
async fn list_with_an_unknown_keyword_is_501() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("LIST NONSENSE").await), "501");
    assert_eq!(code(&c.cmd("LIST OVERVIEW.FMT extra").await), "501");
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

// ---- OVER, XOVER (RFC 3977 §8.3, RFC 2980 §2.8) ---------------------------

/// Splits an overview line into its fields.
fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

#[tokio::test]
async fn over_a_range_gives_one_line_per_article_in_overview_fmt_order() {
    let (server, mut c, ids) = with_articles(3).await;
    c.cmd("GROUP local.test").await;
    let (status, lines) = c.cmd_block("OVER 1-3", "224").await;
    assert_eq!(code(&status), "224", "{status}");
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        let f = fields(line);
        assert_eq!(f.len(), 9, "number + 8 fields: {line:?}");
        assert_eq!(f[0], (i + 1).to_string());
        assert_eq!(f[1], format!("subject {}", i + 1));
        assert_eq!(f[2], "Tester <tester@example.com>");
        assert!(
            tidings::article::parse_date(f[3].as_bytes()).is_some(),
            "{line}"
        );
        assert_eq!(f[4], ids[i]);
        assert_eq!(f[5], "", "no References");
        assert_eq!(f[8], format!("Xref: tidings.local local.test:{}", i + 1));
    }
    server.stop().await;
}

#[tokio::test]
async fn over_bytes_and_lines_match_the_article_as_served() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = "one\r\n.two\r\n\r\nfour caf\u{e9}\r\n";
    let id = post_ok(&mut c, "local.test", "counted", body).await;
    c.cmd("GROUP local.test").await;
    c.cmd("ARTICLE 1").await;
    let served = c.block_bytes().await;
    let (_, lines) = c.cmd_block("OVER 1", "224").await;
    let f = fields(&lines[0]);
    assert_eq!(f[6], served.len().to_string(), ":bytes");
    assert_eq!(f[7], "4", ":lines");
    // The same by message-id, HDR and XHDR.
    let (_, by_id) = c.cmd_block(&format!("OVER {id}"), "224").await;
    assert_eq!(fields(&by_id[0])[6], served.len().to_string());
    let (_, hdr) = c.cmd_block("HDR :bytes 1", "225").await;
    assert_eq!(hdr, [format!("1 {}", served.len())]);
    let (_, hdr) = c.cmd_block("HDR :lines 1", "225").await;
    assert_eq!(hdr, ["1 4"]);
    let (_, hdr) = c.cmd_block(&format!("HDR :bytes {id}"), "225").await;
    assert_eq!(hdr, [format!("0 {}", served.len())]);
    let (_, hdr) = c.cmd_block(&format!("HDR :lines {id}"), "225").await;
    assert_eq!(hdr, ["0 4"]);
    server.stop().await;
}

#[tokio::test]
async fn over_selects_n_n_onwards_and_n_to_m() {
    let (server, mut c, _) = with_articles(4).await;
    c.cmd("GROUP local.test").await;
    let numbers = |lines: &[String]| -> Vec<String> {
        lines.iter().map(|l| fields(l)[0].to_owned()).collect()
    };
    let (_, lines) = c.cmd_block("OVER 2", "224").await;
    assert_eq!(numbers(&lines), ["2"]);
    let (_, lines) = c.cmd_block("OVER 2-", "224").await;
    assert_eq!(numbers(&lines), ["2", "3", "4"]);
    let (_, lines) = c.cmd_block("OVER 2-3", "224").await;
    assert_eq!(numbers(&lines), ["2", "3"]);
    let (_, lines) = c.cmd_block("XOVER 3-", "224").await;
    assert_eq!(numbers(&lines), ["3", "4"]);
    server.stop().await;
}

#[tokio::test]
async fn over_by_message_id_has_number_0() {
    let (server, mut c, ids) = with_articles(2).await;
    let (status, lines) = c.cmd_block(&format!("OVER {}", ids[1]), "224").await;
    assert_eq!(code(&status), "224", "{status}");
    assert_eq!(lines.len(), 1);
    let f = fields(&lines[0]);
    assert_eq!(f[0], "0");
    assert_eq!(f[1], "subject 2");
    assert_eq!(f[4], ids[1]);
    server.stop().await;
}

#[tokio::test]
async fn over_without_argument_gives_the_current_article() {
    let (server, mut c, ids) = with_articles(3).await;
    c.cmd("GROUP local.test").await;
    c.cmd("NEXT").await;
    let (_, lines) = c.cmd_block("OVER", "224").await;
    assert_eq!(lines.len(), 1);
    assert_eq!(fields(&lines[0])[0], "2");
    assert_eq!(fields(&lines[0])[4], ids[1]);
    let (_, lines) = c.cmd_block("XOVER", "224").await;
    assert_eq!(fields(&lines[0])[0], "2");
    server.stop().await;
}

#[tokio::test]
async fn xover_answers_like_over() {
    let (server, mut c, _) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    let (status, xover) = c.cmd_block("XOVER 1-2", "224").await;
    assert_eq!(code(&status), "224");
    let (_, over) = c.cmd_block("OVER 1-2", "224").await;
    assert_eq!(xover, over);
    server.stop().await;
}

#[tokio::test]
async fn over_without_a_group_is_412() {
    let (server, mut c, _) = with_articles(1).await;
    assert_eq!(code(&c.cmd("OVER 1-2").await), "412");
    assert_eq!(code(&c.cmd("OVER").await), "412");
    assert_eq!(code(&c.cmd("XOVER 1").await), "412");
    server.stop().await;
}

#[tokio::test]
async fn over_without_argument_in_an_empty_newsgroup_is_420() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd("GROUP local.general").await;
    assert_eq!(code(&c.cmd("OVER").await), "420");
    assert_eq!(code(&c.cmd("XOVER").await), "420");
    server.stop().await;
}

#[tokio::test]
async fn over_an_empty_range_is_423() {
    let (server, mut c, _) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    assert_eq!(code(&c.cmd("OVER 5-9").await), "423");
    assert_eq!(code(&c.cmd("OVER 2-1").await), "423");
    assert_eq!(code(&c.cmd("XOVER 3-").await), "423");
    server.stop().await;
}

#[tokio::test]
async fn over_an_unknown_message_id_is_430() {
    let (server, mut c, _) = with_articles(1).await;
    assert_eq!(code(&c.cmd("OVER <nope@example.com>").await), "430");
    server.stop().await;
}

// ---- HDR, XHDR, XPAT (RFC 3977 §8.5, RFC 2980 §2.6, §2.9) -----------------

#[tokio::test]
async fn hdr_of_an_overview_field_answers_225_with_number_and_value() {
    let (server, mut c, ids) = with_articles(3).await;
    c.cmd("GROUP local.test").await;
    let (status, lines) = c.cmd_block("HDR Subject 1-3", "225").await;
    assert_eq!(code(&status), "225", "{status}");
    assert_eq!(lines, ["1 subject 1", "2 subject 2", "3 subject 3"]);
    let (_, lines) = c.cmd_block("HDR message-id 2-", "225").await;
    assert_eq!(lines, [format!("2 {}", ids[1]), format!("3 {}", ids[2])]);
    let (_, lines) = c.cmd_block(&format!("HDR Subject {}", ids[2]), "225").await;
    assert_eq!(lines, ["0 subject 3"]);
    // Without argument: the current article.
    let (_, lines) = c.cmd_block("HDR Subject", "225").await;
    assert_eq!(lines, ["1 subject 1"]);
    server.stop().await;
}

#[tokio::test]
async fn hdr_of_a_header_not_in_the_overview_reads_the_articles() {
    let (server, mut c, ids) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    let (status, lines) = c.cmd_block("HDR Path 1-2", "225").await;
    assert_eq!(code(&status), "225");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (i, line) in lines.iter().enumerate() {
        let (n, path) = line.split_once(' ').expect("number and value");
        assert_eq!(n, (i + 1).to_string());
        assert!(path.starts_with("tidings.local!.POSTED"), "{line}");
    }
    let (_, lines) = c
        .cmd_block(&format!("HDR Injection-Info {}", ids[0]), "225")
        .await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("0 tidings.local"), "{lines:?}");
    server.stop().await;
}

#[tokio::test]
async fn hdr_of_an_absent_header_gives_empty_values() {
    let (server, mut c, _) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    let (status, lines) = c.cmd_block("HDR X-Nothing 1-2", "225").await;
    assert_eq!(code(&status), "225");
    assert_eq!(lines, ["1 ", "2 "]);
    server.stop().await;
}

#[tokio::test]
async fn xhdr_answers_221_with_number_and_value() {
    let (server, mut c, ids) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    let (status, lines) = c.cmd_block("XHDR Subject 1-2", "221").await;
    assert_eq!(code(&status), "221", "{status}");
    assert_eq!(lines, ["1 subject 1", "2 subject 2"]);
    let (_, lines) = c.cmd_block("XHDR Message-ID 2", "221").await;
    assert_eq!(lines, [format!("2 {}", ids[1])]);
    let (_, lines) = c.cmd_block("XHDR Path 1", "221").await;
    assert!(lines[0].starts_with("1 tidings.local!"), "{lines:?}");
    let (_, lines) = c.cmd_block("XHDR Subject", "221").await;
    assert_eq!(lines, ["1 subject 1"]);
    server.stop().await;
}

#[tokio::test]
async fn xpat_lists_only_the_articles_whose_header_matches() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    post_ok(&mut c, "local.test", "Rust news", "b\r\n").await;
    post_ok(&mut c, "local.test", "Go news", "b\r\n").await;
    post_ok(&mut c, "local.test", "rusty nails", "b\r\n").await;
    c.cmd("GROUP local.test").await;
    let (status, lines) = c.cmd_block("XPAT Subject 1- *news*", "221").await;
    assert_eq!(code(&status), "221", "{status}");
    assert_eq!(lines, ["1 Rust news", "2 Go news"]);
    let (_, lines) = c.cmd_block("XPAT Subject 1-3 Rust* rusty*", "221").await;
    assert_eq!(lines, ["1 Rust news", "3 rusty nails"]);
    let (status, lines) = c.cmd_block("XPAT Subject 1- nothing*", "221").await;
    assert_eq!(code(&status), "221");
    assert!(lines.is_empty(), "{lines:?}");
    let (_, lines) = c.cmd_block("XPAT From 1-2 *tester@*", "221").await;
    assert_eq!(lines.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn hdr_without_a_group_is_412() {
    let (server, mut c, _) = with_articles(1).await;
    assert_eq!(code(&c.cmd("HDR Subject 1").await), "412");
    assert_eq!(code(&c.cmd("HDR Subject").await), "412");
    assert_eq!(code(&c.cmd("XHDR Subject 1-").await), "412");
    assert_eq!(code(&c.cmd("XPAT Subject 1- *").await), "412");
    server.stop().await;
}

#[tokio::test]
async fn hdr_without_argument_in_an_empty_newsgroup_is_420() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd("GROUP local.general").await;
    assert_eq!(code(&c.cmd("HDR Subject").await), "420");
    server.stop().await;
}

#[tokio::test]
async fn hdr_of_an_empty_range_is_423() {
    let (server, mut c, _) = with_articles(2).await;
    c.cmd("GROUP local.test").await;
    assert_eq!(code(&c.cmd("HDR Subject 5-9").await), "423");
    assert_eq!(code(&c.cmd("HDR Path 5-").await), "423");
    assert_eq!(code(&c.cmd("XHDR Subject 7").await), "423");
    server.stop().await;
}

#[tokio::test]
async fn hdr_of_an_unknown_message_id_is_430() {
    let (server, mut c, _) = with_articles(1).await;
    assert_eq!(code(&c.cmd("HDR Subject <nope@example.com>").await), "430");
    assert_eq!(code(&c.cmd("XHDR Subject <nope@example.com>").await), "430");
    server.stop().await;
}

// ---- what is not offered (RFC 3977 §3.2.1, RFC 4643, RFC 4642, RFC 4644) --

#[tokio::test]
async fn tls_and_transit_commands_are_502() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for line in [
        "STARTTLS",
        "MODE STREAM",
        "IHAVE <offered@example.com>",
        "CHECK <offered@example.com>",
    ] {
        assert_eq!(code(&c.cmd(line).await), "502", "{line}");
    }
    // TAKETHIS carries its article (RFC 4644 §2.5): it is read and dropped,
    // so the session stays in step.
    c.send(b"TAKETHIS <offered@example.com>\r\nSubject: x\r\n\r\nbody\r\n.\r\n")
        .await;
    assert_eq!(code(&c.line().await), "502");
    // The session is unharmed.
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    server.stop().await;
}

// ---- 500 and 501 (RFC 3977 §3.2.1) -----------------------------------------

#[tokio::test]
async fn an_unknown_command_is_500() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(code(&c.cmd("FROBNICATE").await), "500");
    assert_eq!(code(&c.cmd("XYZZY 1 2 3").await), "500");
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn bad_arguments_are_501() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for line in [
        "GROUP",
        "GROUP a b",
        "ARTICLE <bad",
        "ARTICLE abc",
        "HEAD 1 2",
        "LISTGROUP local.test x-y",
        "DATE now",
        "MODE WRITER",
        "NEWGROUPS yesterday",
        "NEWNEWS * 20241301 000000",
        "OVER a-b",
        "HDR",
        "XPAT Subject 1-",
    ] {
        assert_eq!(code(&c.cmd(line).await), "501", "{line}");
    }
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn commands_are_case_insensitive() {
    let (server, mut c, ids) = with_articles(1).await;
    assert_eq!(c.cmd("group local.test").await, "211 1 1 1 local.test");
    assert_eq!(c.cmd("sTaT").await, format!("223 1 {}", ids[0]));
    server.stop().await;
}

// ---- persistence ------------------------------------------------------------

#[tokio::test]
async fn articles_survive_a_restart_and_numbering_continues() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let first = post_ok(&mut c, "local.test", "before", "kept\r\n").await;
    let second = post_ok(&mut c, "local.test,local.general", "before 2", "kept\r\n").await;
    c.cmd("QUIT").await;
    let (dir, config) = server.stop().await;

    let server = TestServer::start_in(dir, config).await;
    let mut c = server.client().await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 2 1 2 local.test");
    assert_eq!(c.cmd("STAT 1").await, format!("223 1 {first}"));
    let (status, body) = c.cmd_block("BODY 2", "222").await;
    assert_eq!(status, format!("222 2 {second}"));
    assert_eq!(body, ["kept"]);
    let third = post_ok(&mut c, "local.test", "after", "new\r\n").await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 3 1 3 local.test");
    assert_eq!(c.cmd("STAT 3").await, format!("223 3 {third}"));
    assert_eq!(
        c.cmd("GROUP local.general").await,
        "211 1 1 1 local.general"
    );
    // A message-id taken before the restart is still refused.
    let raw = format!(
        "Message-ID: {first}\r\nFrom: A <a@example.com>\r\nNewsgroups: local.test\r\n\
         Subject: again\r\n\r\nb\r\n"
    );
    assert_eq!(code(&c.post(&raw).await), "441");
    server.stop().await;
}

#[tokio::test]
async fn an_article_without_a_body_is_served_with_an_empty_body() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // No blank line and no body at all.
    let raw = "From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: empty\r\n";
    let id = posted_id(&c.post(raw).await);
    assert_eq!(c.cmd(&format!("BODY {id}")).await, format!("222 0 {id}"));
    assert!(c.block_bytes().await.is_empty());
    c.cmd(&format!("ARTICLE {id}")).await;
    let whole = c.block_bytes().await;
    assert!(whole.ends_with(b"\r\n\r\n"), "head, then the blank line");
    c.cmd("GROUP local.test").await;
    let (_, over) = c.cmd_block("OVER 1", "224").await;
    assert_eq!(fields(&over[0])[7], "0", ":lines");
    assert_eq!(fields(&over[0])[6], whole.len().to_string(), ":bytes");
    server.stop().await;
}

#[tokio::test]
async fn a_range_starting_at_0_selects_from_the_first_article() {
    let (server, mut c, _) = with_articles(2).await;
    let (status, numbers) = c.cmd_block("LISTGROUP local.test 0-", "211").await;
    assert_eq!(code(&status), "211", "{status}");
    assert_eq!(numbers, ["1", "2"]);
    let (status, lines) = c.cmd_block("XOVER 0-", "224").await;
    assert_eq!(code(&status), "224", "{status}");
    assert_eq!(lines.len(), 2);
    // RFC 3977 §9.8 article-number = 1*16DIGIT: 0 parses, and names nothing.
    assert_eq!(code(&c.cmd("ARTICLE 0").await), "423");
    server.stop().await;
}

#[tokio::test]
async fn overview_fields_are_unfolded_and_never_hold_a_tab() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let raw = "From: A <a@example.com>\r\nNewsgroups: local.test\r\n\
               Subject: tab\there\r\nReferences: <one@example.com>\r\n <two@example.com>\r\n\
               \r\nb\r\n";
    let id = posted_id(&c.post(raw).await);
    c.cmd("GROUP local.test").await;
    let (_, over) = c.cmd_block("OVER 1", "224").await;
    let f = fields(&over[0]);
    assert_eq!(f.len(), 9, "{over:?}");
    assert_eq!(f[1], "tab here");
    assert_eq!(f[5], "<one@example.com> <two@example.com>");
    // HDR of a header read from the article is unfolded the same way.
    let (_, hdr) = c.cmd_block(&format!("HDR References {id}"), "225").await;
    assert_eq!(hdr, ["0 <one@example.com> <two@example.com>"]);
    server.stop().await;
}

#[tokio::test]
async fn arguments_may_be_separated_by_several_spaces_or_tabs() {
    let (server, mut c, ids) = with_articles(2).await;
    assert_eq!(c.cmd("GROUP \t local.test").await, "211 2 1 2 local.test");
    assert_eq!(c.cmd("STAT  2").await, format!("223 2 {}", ids[1]));
    let (_, lines) = c.cmd_block("HDR\tSubject\t1-2", "225").await;
    assert_eq!(lines, ["1 subject 1", "2 subject 2"]);
    server.stop().await;
}

#[tokio::test]
async fn trailing_whitespace_after_a_command_is_tolerated() {
    let (server, mut c, ids) = with_articles(1).await;
    assert_eq!(c.cmd("GROUP local.test ").await, "211 1 1 1 local.test");
    assert_eq!(c.cmd("STAT 1\t").await, format!("223 1 {}", ids[0]));
    assert_eq!(code(&c.cmd("DATE ").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn articles_posted_after_group_are_reachable_without_selecting_again() {
    let (server, mut reader, ids) = with_articles(1).await;
    assert_eq!(reader.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    let mut poster = server.client().await;
    let later = post_ok(&mut poster, "local.test", "later", "b\r\n").await;
    assert_eq!(
        reader.cmd("NEXT").await,
        format!("223 2 {later} Article found")
    );
    let (_, over) = reader.cmd_block("OVER 1-", "224").await;
    assert_eq!(over.len(), 2);
    assert_eq!(
        reader.cmd("LAST").await,
        format!("223 1 {} Article found", ids[0])
    );
    server.stop().await;
}
