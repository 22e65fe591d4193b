//! What an injecting agent (RFC 5537 §3.5) and a relaying agent (RFC 5537
//! §3.6) check in an article and add to it.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use super::date::{format_date, parse_date};
use super::parse::{Field, Parsed, parse_article, trim, unfold};
use super::{ArticleError, InjectionContext, Prepared};
use crate::wire::types::{GroupName, MessageId};

/// Header fields an article may carry at most once. RFC 5536 §3 makes
/// Date, From, Message-ID, Newsgroups, Path and Subject mandatory and
/// single; RFC 5322 §3.6 allows one References at most. A second one would leave
/// readers and peers to guess which counts.
const SINGLE: [&str; 7] = [
    "From",
    "Subject",
    "Newsgroups",
    "Message-ID",
    "Date",
    "Path",
    "References",
];

/// RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998
/// characters, excluding the CRLF."
const MAX_LINE: usize = 998;

fn find<'a>(fields: &[Field<'a>], name: &str) -> Option<Field<'a>> {
    fields.iter().find(|f| f.is(name)).copied()
}

/// Shows a value in an error message: lossy, and short enough for a
/// response line.
fn shown(v: &[u8]) -> String {
    let v = v.get(..80).unwrap_or(v);
    String::from_utf8_lossy(v).into_owned()
}

fn check_duplicates(fields: &[Field<'_>]) -> Result<(), ArticleError> {
    for name in SINGLE {
        if fields.iter().filter(|f| f.is(name)).count() > 1 {
            return Err(ArticleError::BadHeader(format!("duplicate {name} header")));
        }
    }
    Ok(())
}

/// The unfolded, trimmed value of a header that must be present and, as
/// RFC 5536 §2.2 requires of every Netnews header, not empty.
fn required<'a>(fields: &[Field<'a>], name: &'static str) -> Result<Cow<'a, [u8]>, ArticleError> {
    let field = find(fields, name).ok_or(ArticleError::MissingHeader(name))?;
    // Borrowed from the article unless the field is folded: this runs for
    // six fields of every article a peer sends.
    let value = match field.unfolded() {
        Cow::Borrowed(v) => Cow::Borrowed(trim(v)),
        Cow::Owned(v) => Cow::Owned(trim(&v).to_vec()),
    };
    if value.is_empty() {
        return Err(ArticleError::BadHeader(format!("empty {name} header")));
    }
    Ok(value)
}

/// `msg-id = "<" msg-id-core ">"`, `msg-id-core = id-left "@" id-right`
/// (RFC 5536 §3.1.3). [`MessageId`] checks the RFC 3977 limits (length,
/// printable, brackets); the `@` is the one part of the RFC 5536 grammar it
/// leaves out.
fn message_id(value: &[u8]) -> Result<MessageId, ArticleError> {
    let id = MessageId::try_from(value).map_err(|e| {
        ArticleError::BadHeader(format!("invalid Message-ID {}: {e}", shown(value)))
    })?;
    if !id.as_str().contains('@') {
        return Err(ArticleError::BadHeader(format!(
            "invalid Message-ID {}: no @",
            shown(value)
        )));
    }
    Ok(id)
}

/// `newsgroups = "Newsgroups:" SP newsgroup-list CRLF`,
/// `newsgroup-list = [FWS] newsgroup-name *( [FWS] "," [FWS] newsgroup-name ) [FWS]`
/// (RFC 5536 §3.1.4). Duplicates are dropped, keeping the first, so a
/// careless cross-post is not numbered twice in one group.
fn newsgroups(value: &[u8]) -> Result<Vec<GroupName>, ArticleError> {
    let mut groups: Vec<GroupName> = Vec::new();
    for name in value.split(|&c| c == b',').map(trim) {
        if name.is_empty() {
            return Err(ArticleError::BadHeader(
                "invalid Newsgroups header: empty newsgroup name".to_owned(),
            ));
        }
        let group = GroupName::try_from(name).map_err(|e| {
            ArticleError::BadHeader(format!("invalid Newsgroups header: {}: {e}", shown(name)))
        })?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(groups)
}

/// `path-list = *( path-entry ( path-delimiter / path-diagnostic ) ) tail-entry`
/// (RFC 5536 §3.1.5, RFC 5537 §3.2.1). We split on `!` only, which covers
/// both delimiters and the `!.KEYWORD` diagnostics; the empty entry that
/// `!!` makes carries no identity and is dropped.
fn path_entries(value: &[u8]) -> Vec<String> {
    value
        .split(|&c| c == b'!')
        .map(trim)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// `Distribution: dist-list` with `dist-list = dist-name *("," dist-name)`
/// (RFC 5536 §3.2.4), kept as written; empty items are ignored.
fn distributions(fields: &[Field<'_>]) -> Vec<String> {
    find(fields, "Distribution")
        .map(|f| {
            f.unfolded()
                .split(|&c| c == b',')
                .map(trim)
                .filter(|d| !d.is_empty())
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn control(fields: &[Field<'_>]) -> Option<String> {
    let f = find(fields, "Control")?;
    Some(String::from_utf8_lossy(trim(&f.unfolded())).into_owned())
}

/// The message-id an article withdraws: `Control: cancel <id>` (RFC 5537
/// §5.3, the verb without case) or `Supersedes: <id>` (RFC 5536 §3.2.12;
/// a cancel wins when an article has both). A target that is not a
/// message-id withdraws nothing.
fn withdraws(fields: &[Field<'_>]) -> Option<MessageId> {
    let target = |value: &[u8]| -> Option<MessageId> {
        let id = value
            .split(|c| c.is_ascii_whitespace())
            .find(|w| !w.is_empty())?;
        MessageId::try_from(id).ok()
    };
    if let Some(f) = find(fields, "Control") {
        let value = f.unfolded();
        let mut words = value
            .split(|c| c.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        if words
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case(b"cancel"))
        {
            return words.next().and_then(target);
        }
    }
    target(&find(fields, "Supersedes")?.unfolded())
}

/// RFC 3977 §8.3.2: overview fields 1-5, unfolded and sanitised (see
/// [`unfold`]), empty when the header is absent. Surrounding whitespace is
/// trimmed too: a Message-ID field with a trailing space would not match the
/// References of its follow-ups, and newsreaders thread on that match.
fn overview(values: [Option<&[u8]>; 5]) -> String {
    let len: usize = values.iter().flatten().map(|v| v.len() + 1).sum();
    let mut out = String::with_capacity(len);
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        if let Some(v) = v {
            out.push_str(&String::from_utf8_lossy(trim(&unfold(v))));
        }
    }
    out
}

/// Lines in the body: one per CRLF, plus a last line without one.
pub fn body_lines(body: &[u8]) -> u64 {
    // Each LF that ends a CRLF; faster than a search for the pair.
    let crlfs = memchr::memchr_iter(b'\n', body)
        .filter(|&i| i > 0 && body[i - 1] == b'\r')
        .count() as u64;
    crlfs + u64::from(!body.is_empty() && !body.ends_with(b"\r\n"))
}

fn overview_of(fields: &[Field<'_>], date: Option<&[u8]>, id: Option<&[u8]>) -> String {
    let value = |name| find(fields, name).map(|f| f.value);
    overview([
        value("Subject"),
        value("From"),
        date.or(value("Date")),
        id.or(value("Message-ID")),
        value("References"),
    ])
}

/// The overview line `Prepared::finish` gave a stored article, made again
/// from the article (for overview rows rebuilt from the log,
/// `store::overview`): the fields it was made from are in the stored head,
/// as are the ones injection added, and Xref is the last field.
pub fn stored_overview(article: &[u8]) -> String {
    let (head, body) = super::split(article);
    let fields: Vec<Field<'_>> = super::parse::lenient_fields(head).collect();
    let xref = find(&fields, "Xref")
        .map(|f| String::from_utf8_lossy(&f.unfolded()).into_owned())
        .unwrap_or_default();
    format!(
        "{}\t{}\t{}\tXref: {}",
        overview_of(&fields, None, None),
        article.len(),
        body_lines(body),
        xref
    )
}

fn too_long_line(head: &[u8]) -> bool {
    head.split(|&c| c == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() > MAX_LINE)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A message-id no other call in any process will make (RFC 5536 §3.1.3
/// asks for uniqueness forever): the time in seconds, a process-wide
/// counter, and 64 bits from the standard library's per-process random
/// hash keys mixed with the nanoseconds and the process id, so two servers
/// or two runs in the same second still differ.
pub(super) fn generate_message_id(
    domain: &str,
    now: DateTime<Utc>,
) -> Result<MessageId, ArticleError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u32(now.timestamp_subsec_nanos());
    h.write_u32(std::process::id());
    let id = format!(
        "<{}.{}.{}@{}>",
        base36(now.timestamp().unsigned_abs()),
        base36(n),
        base36(h.finish()),
        domain
    );
    MessageId::try_from(id.as_str()).map_err(|e| {
        ArticleError::BadHeader(format!(
            "cannot make a Message-ID with domain {domain}: {e}"
        ))
    })
}

/// A parameter value as an RFC 2045 quoted-string: `"` and `\` escaped,
/// and no CR, LF or NUL, so a user name cannot add header lines.
fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\0' => {}
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `Injection-Info: path-identity *( ";" injection-info-parameter )` with
/// posting-host and posting-account (RFC 5536 §3.2.8).
fn injection_info(cx: &InjectionContext<'_>) -> String {
    let mut v = format!(
        "{}; posting-host={}",
        cx.path_identity,
        quoted(cx.posting_host)
    );
    if let Some(user) = cx.user {
        v.push_str("; posting-account=");
        v.push_str(&quoted(user));
    }
    v
}

fn push_field(head: &mut Vec<u8>, name: &str, value: &str) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value.as_bytes());
    head.extend_from_slice(b"\r\n");
}

/// See [`super::prepare_post`].
pub fn post(raw: &[u8], cx: &InjectionContext<'_>) -> Result<Prepared, ArticleError> {
    let Parsed { fields, head, body } = parse_article(raw)?;
    if too_long_line(head) {
        return Err(ArticleError::BadHeader(format!(
            "header line longer than {MAX_LINE} octets"
        )));
    }
    check_duplicates(&fields)?;
    // RFC 5537 §3.5: an injecting agent MUST reject a proto-article
    // that has an Injection-Date; it has been injected already and should
    // arrive by IHAVE/TAKETHIS instead. Injection-Info is removed below, as
    // RFC 5536 §3.2.8 has injecting agents do, rather than rejected: a
    // client that re-posts a copy of an article would otherwise be refused
    // for a header it cannot see the harm in.
    if find(&fields, "Injection-Date").is_some() {
        return Err(ArticleError::BadHeader(
            "article already injected (has Injection-Date)".to_owned(),
        ));
    }
    let from = required(&fields, "From")?;
    if !has_mailbox(&from) {
        return Err(ArticleError::BadHeader(format!(
            "From {} has no address of the form user@domain",
            shown(&from)
        )));
    }
    let groups = newsgroups(&required(&fields, "Newsgroups")?)?;
    required(&fields, "Subject")?;

    let (id, new_id) = match find(&fields, "Message-ID") {
        Some(f) => (message_id(trim(&f.unfolded()))?, None),
        None => {
            let id = match cx.offered_id {
                Some(id) => id.clone(),
                None => generate_message_id(cx.domain, cx.now)?,
            };
            (id.clone(), Some(id))
        }
    };
    let new_date = match find(&fields, "Date") {
        Some(f) => {
            let v = f.unfolded();
            let date = parse_date(&v)
                .ok_or_else(|| ArticleError::BadHeader(format!("invalid Date {}", shown(&v))))?;
            // RFC 5537 §3.5: reject a Date more than 24 hours ahead.
            if too_far_ahead(date, cx.now) {
                return Err(ArticleError::BadHeader(format!(
                    "Date {} is more than 24 hours in the future",
                    shown(&v)
                )));
            }
            None
        }
        None => Some(format_date(&cx.now)),
    };

    // RFC 5537 §3.2.1, §3.5: the injecting agent prepends its identity
    // and the `.POSTED` diagnostic; a proto-article without a Path gets the
    // tail-entry `not-for-mail`. A Path that already says POSTED was
    // injected elsewhere, which §3.5 says to reject.
    let path_value = match find(&fields, "Path") {
        Some(f) => {
            let old = trim(&f.unfolded()).to_vec();
            let posted = path_entries(&old).iter().any(|e| {
                let e = e.to_ascii_uppercase();
                e == ".POSTED" || e.starts_with(".POSTED.")
            });
            if posted {
                return Err(ArticleError::BadHeader(
                    "article already injected (Path has .POSTED)".to_owned(),
                ));
            }
            if old.is_empty() {
                format!("{}!.POSTED!not-for-mail", cx.path_identity)
            } else {
                format!(
                    "{}!.POSTED!{}",
                    cx.path_identity,
                    String::from_utf8_lossy(&old)
                )
            }
        }
        None => format!("{}!.POSTED!not-for-mail", cx.path_identity),
    };

    // Path first, as INN writes it; the client's lines byte for byte; then
    // what we add. Xref is ours to write (at finish) and Injection-Info is
    // the injecting agent's alone (RFC 5536 §3.2.8).
    // Every post gets a Cancel-Lock the operator can open, and a
    // logged-in poster's one only they can open too (RFC 8315 §4, as INN's
    // nnrpd does), added to any the client wrote; their cancel or
    // superseding article gets the key that opens their lock on its target
    // (it opens nothing when the target was not theirs).
    let withdraws = withdraws(&fields);
    let mut lock = cx.cancel_secrets.map(|s| s.lock(cx.user, id.as_str()));
    let mut key = match (cx.cancel_secrets, cx.user, &withdraws) {
        (Some(s), Some(user), Some(target)) => Some(s.user_key(user, target.as_str())),
        _ => None,
    };
    let mut out = Vec::with_capacity(head.len() + 256);
    push_field(&mut out, "Path", &path_value);
    for f in &fields {
        if f.is("Path") || f.is("Xref") || f.is("Injection-Info") {
            continue;
        }
        // Ours goes at the end of the client's field (RFC 8315 §2 allows
        // one of each; should a client send two, the first gets it).
        let ours = if f.is("Cancel-Lock") {
            lock.take()
        } else if f.is("Cancel-Key") {
            key.take()
        } else {
            None
        };
        match ours {
            Some(ours) => {
                let theirs = String::from_utf8_lossy(trim(&f.unfolded())).into_owned();
                let both = if theirs.is_empty() {
                    ours
                } else {
                    format!("{theirs} {ours}")
                };
                push_field(&mut out, &String::from_utf8_lossy(f.name), &both);
            }
            None => out.extend_from_slice(f.line),
        }
    }
    if let Some(lock) = lock {
        push_field(&mut out, "Cancel-Lock", &lock);
    }
    if let Some(key) = key {
        push_field(&mut out, "Cancel-Key", &key);
    }
    if let Some(id) = &new_id {
        push_field(&mut out, "Message-ID", id.as_str());
    }
    if let Some(date) = &new_date {
        push_field(&mut out, "Date", date);
    }
    push_field(&mut out, "Injection-Date", &format_date(&cx.now));
    push_field(&mut out, "Injection-Info", &injection_info(cx));

    let overview = overview_of(
        &fields,
        new_date.as_deref().map(str::as_bytes),
        new_id.as_ref().map(|id| id.as_str().as_bytes()),
    );
    Ok(Prepared {
        message_id: id,
        newsgroups: groups,
        distributions: distributions(&fields),
        path: path_entries(path_value.as_bytes()),
        control: control(&fields),
        withdraws,
        head: out,
        body: body.to_vec(),
        overview,
        body_lines: body_lines(body),
    })
}

/// RFC 5536 §3.1.2: From is a mailbox list. An injecting agent checks
/// that it names an address (`user@domain`, bare, in angle brackets after a
/// display name, or followed by a comment) so replies can reach the poster;
/// relayed articles are taken as their injecting agent passed them.
fn has_mailbox(from: &[u8]) -> bool {
    let text = String::from_utf8_lossy(from);
    let text = text.trim();
    let addr = match (text.rfind('<'), text.rfind('>')) {
        (Some(l), Some(r)) if l < r => &text[l + 1..r],
        _ => text.split_whitespace().next().unwrap_or(""),
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

fn too_far_ahead(date: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    match now.checked_add_signed(TimeDelta::hours(24)) {
        Some(limit) => date > limit,
        None => false,
    }
}

/// See [`super::prepare_relay`].
pub fn relay(
    raw: &[u8],
    offered: Option<&MessageId>,
    path_identity: &str,
) -> Result<Prepared, ArticleError> {
    let Parsed { fields, head, body } = parse_article(raw)?;
    check_duplicates(&fields)?;
    // RFC 5537 §3.6: a relaying agent MUST reject an article without
    // the mandatory headers of RFC 5536 §3.1.
    let old_path = required(&fields, "Path")?;
    required(&fields, "From")?;
    let groups = required(&fields, "Newsgroups")?;
    required(&fields, "Subject")?;
    let id = message_id(&required(&fields, "Message-ID")?)?;
    let date = required(&fields, "Date")?;

    if offered.is_some_and(|o| *o != id) {
        return Err(ArticleError::IdMismatch);
    }
    if parse_date(&date).is_none() {
        return Err(ArticleError::BadHeader(format!(
            "invalid Date {}",
            shown(&date)
        )));
    }
    let groups = newsgroups(&groups)?;
    // RFC 5537 §3.6: reject an article whose Path already holds our
    // identity; it has been here, and relaying it again would loop.
    let old_entries = path_entries(&old_path);
    if let Some(seen) = old_entries
        .iter()
        .find(|e| e.eq_ignore_ascii_case(path_identity))
    {
        return Err(ArticleError::PathLoop(seen.clone()));
    }

    // RFC 5537 §3.2.1: prepend `identity!` to the Path as received; the
    // rest of the header block is kept byte for byte, less any Xref (it
    // names the sender's article numbers, not ours).
    // The head as received, our identity and its `!`, and the CRLF that
    // `parse_article` left out of `head`.
    let mut out = Vec::with_capacity(head.len() + path_identity.len() + 3);
    for f in &fields {
        if f.is("Xref") {
            continue;
        }
        if f.is("Path") {
            let start = f
                .value
                .iter()
                .position(|&c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(f.value.len());
            out.extend_from_slice(b"Path: ");
            out.extend_from_slice(path_identity.as_bytes());
            out.push(b'!');
            out.extend_from_slice(f.value.get(start..).unwrap_or_default());
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(f.line);
        }
    }

    let mut path = Vec::with_capacity(old_entries.len() + 1);
    path.push(path_identity.to_owned());
    path.extend(old_entries);
    Ok(Prepared {
        message_id: id,
        newsgroups: groups,
        distributions: distributions(&fields),
        path,
        control: control(&fields),
        withdraws: withdraws(&fields),
        head: out,
        body: body.to_vec(),
        overview: overview_of(&fields, None, None),
        body_lines: body_lines(body),
    })
}
