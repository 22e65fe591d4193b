//! `tidings article cancel`: the operator withdraws a post made here from
//! every server it reached. Every post made here carries a Cancel-Lock of
//! the operator's secret; this makes the cancel control message with the
//! key that opens it, and posts it through the running server, which
//! carries it out and floods it like any cancel (INN's gencancel piped to
//! inews).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::article::{self, cancel_lock};
use crate::config::Config;
use crate::store::StoredArticle;
use crate::wire::types::MessageId;

/// How long the server may take over each answer.
const ANSWER: Duration = Duration::from_secs(30);

/// The cancel of `target` (stored here), signed with the operator's key;
/// the reason it cannot be made otherwise.
pub fn cancel_article(
    config: &Config,
    secrets: &cancel_lock::Secrets,
    target: &MessageId,
    stored: &StoredArticle,
) -> Result<String, String> {
    let key = secrets.admin_key(target.as_str());
    let locked = article::header_value(&stored.bytes, "Cancel-Lock")
        .is_some_and(|lock| cancel_lock::opens(&key, &lock));
    if !locked {
        return Err(format!(
            "{target} carries no Cancel-Lock of this server (it was posted elsewhere, or \
             before its posts had locks): other servers would not honour a cancel; \
             `tidings article remove` withdraws the copy here"
        ));
    }
    let groups = article::header_value(&stored.bytes, "Newsgroups").unwrap_or_default();
    let domain = config.server.domain.as_str();
    Ok(format!(
        "From: usenet@{domain}\r\nNewsgroups: {groups}\r\nSubject: cmsg cancel {target}\r\n\
         Control: cancel {target}\r\nApproved: usenet@{domain}\r\nCancel-Key: {key}\r\n\r\n\
         Cancelled by the operator of {}.\r\n",
        config.server.path_identity.as_str()
    ))
}

/// Posts `text` through the server listening at `addr`; the message-id it
/// got, or why not.
pub async fn post(addr: SocketAddr, text: &str) -> Result<String, String> {
    let stream = tokio::time::timeout(ANSWER, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr}: timed out"))?
        .map_err(|e| format!("no running server at {addr} to post the cancel through: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut answer = async move || -> Result<String, String> {
        let mut line = String::new();
        let n = tokio::time::timeout(ANSWER, read.read_line(&mut line))
            .await
            .map_err(|_| format!("{addr} did not answer in time"))?
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        if n == 0 {
            return Err(format!("{addr} closed the connection"));
        }
        Ok(line.trim_end().to_owned())
    };
    let expect = |line: String, code: &str, what: &str| {
        if line.starts_with(code) {
            Ok(line)
        } else {
            Err(format!("{what}: the server answered {line:?}"))
        }
    };
    expect(answer().await?, "200", "posting")?;
    let mut data = b"POST\r\n".to_vec();
    write.write_all(&data).await.map_err(|e| e.to_string())?;
    expect(answer().await?, "340", "POST")?;
    data.clear();
    crate::wire::dot::stuff(text.as_bytes(), &mut data);
    write.write_all(&data).await.map_err(|e| e.to_string())?;
    let done = expect(answer().await?, "240", "posting the cancel")?;
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(done
        .split_whitespace()
        .find(|w| w.starts_with('<'))
        .unwrap_or_default()
        .to_owned())
}

/// Where to reach the server of `config`: its first listen address, with
/// an unspecified address (0.0.0.0, ::) taken as loopback.
pub fn server_address(config: &Config) -> Option<SocketAddr> {
    let mut addr = *config.server.listen.first()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Some(addr)
}
