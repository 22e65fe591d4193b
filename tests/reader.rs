//! Reading and posting over real TCP against a real server and SQLite file,
//! exchange by exchange (RFC 3977).

mod common;

use common::{TestServer, article, posted_id};

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
