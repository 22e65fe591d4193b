//! Real-client tests: Python's `nntplib` (what many scripts and newsreaders
//! are built on) talks to a real server over TCP. Each test starts its own
//! server and runs one script from `tests/py/`, which asserts what a
//! newsreader user would see and exits non-zero with a message on failure.

mod common;

use std::path::PathBuf;

use common::TestServer;

/// Runs `tests/py/<script>` against a fresh server and asserts it exits 0.
async fn run_script(script: &str) {
    let server = TestServer::start().await;
    run(&server, script, &[]).await;
    server.stop().await;
}

/// Runs `python3 tests/py/<script> <host> <port> <args>...` against
/// `server` and asserts it exits 0, showing its output otherwise.
async fn run(server: &TestServer, script: &str, args: &[&str]) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "py", script]
        .iter()
        .collect();
    let mut all = vec![
        path.into_os_string(),
        server.addr.ip().to_string().into(),
        server.addr.port().to_string().into(),
    ];
    all.extend(args.iter().map(Into::into));
    common::python(all).await;
}

#[tokio::test]
async fn nntplib_session_greeting_capabilities_date_help_quit() {
    run_script("session.py").await;
}

#[tokio::test]
async fn nntplib_groups_list_descriptions_group_newgroups() {
    run_script("groups.py").await;
}

#[tokio::test]
async fn nntplib_post_then_read_over_article_head_body_hdr_newnews() {
    run_script("post_read.py").await;
}

#[tokio::test]
async fn nntplib_over_and_listgroup_on_300_articles() {
    run_script("over_large.py").await;
}

#[tokio::test]
async fn nntplib_posts_in_real_world_shapes_read_back_as_posted() {
    run_script("post_forms.py").await;
}

/// Every POST of more than 8 KiB from nntplib took ~44 ms (Nagle on the
/// client, delayed acknowledgements on the server): the median must be
/// far below that. A generous bound, not a speed target: fixed, a post
/// takes a few milliseconds.
#[tokio::test]
async fn nntplib_large_posts_are_not_held_by_delayed_acknowledgements() {
    run_script("post_large_quick.py").await;
}

#[tokio::test]
async fn nntplib_clients_see_each_others_posts_and_get_distinct_numbers() {
    run_script("two_clients.py").await;
}

#[tokio::test]
async fn nntplib_sees_the_same_articles_and_numbering_after_a_restart() {
    let server = TestServer::start().await;
    run(&server, "restart.py", &["post"]).await;
    let (dir, config) = server.stop().await;
    let server = TestServer::start_in(dir, config).await;
    run(&server, "restart.py", &["check"]).await;
    server.stop().await;
}
