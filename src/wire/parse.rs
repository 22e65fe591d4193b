//! nom parsers: one command line (without its CRLF) -> `Command` (RFC 3977 §9).
//!
//! The line is cut into a verb and whitespace-separated tokens
//! (`X-command = keyword *(WS token)`, RFC 3977 §9.2); each command then
//! checks how many tokens it got and reads each one with the nom parser for
//! its ABNF rule. An unknown verb is `ParseError::Unknown` (500); a known
//! verb with bad arguments is `ParseError::Syntax` (501). Verbs, keywords and
//! `GMT` are case-insensitive (RFC 3977 §3.1).
//!
//! Network input never panics here: no indexing, no unwrap outside tests.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use nom::IResult;
use nom::branch::alt;
use nom::bytes::complete::{tag_no_case, take_till1, take_while, take_while_m_n, take_while1};
use nom::character::complete::char;
use nom::combinator::{all_consuming, map, map_res, opt, recognize, verify};
use nom::multi::many0;
use nom::sequence::{pair, preceded, terminated, tuple};
use thiserror::Error;

use super::command::{ArticleRef, Command, HeadersArg, ListKind, Part, Selection};
use super::types::{ArticleNumber, GroupName, MAX_ARTICLE_NUMBER, MessageId, Range};
use super::wildmat::Wildmat;

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The verb is not one we know: 500.
    #[error("unknown command")]
    Unknown,
    /// The verb is known but its arguments are wrong: 501, with the reason.
    #[error("{0}")]
    Syntax(String),
}

fn syntax(reason: impl Into<String>) -> ParseError {
    ParseError::Syntax(reason.into())
}

/// Whether a command line's verb (its first word, in any case) is `verb`,
/// given in upper case: enough to know what follows the line (a TAKETHIS
/// is followed by its article whatever its arguments) without parsing it.
pub fn verb_is(line: &[u8], verb: &[u8]) -> bool {
    let word = line
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| !b.is_ascii_whitespace());
    word.map(|b| b.to_ascii_uppercase())
        .eq(verb.iter().copied())
}

/// Parses one command line, CRLF already removed.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    parse_command_at(line, Utc::now())
}

/// `parse_command` with the clock passed in: only a two-digit NEWGROUPS /
/// NEWNEWS year depends on it.
fn parse_command_at(line: &[u8], now: DateTime<Utc>) -> Result<Command, ParseError> {
    match streaming_command(line) {
        Some(command) => Ok(command),
        None => parse_general(line, now),
    }
}

/// Any command line, by the general grammar: the verb, its arguments,
/// then the verb's own rules for them.
fn parse_general(line: &[u8], now: DateTime<Utc>) -> Result<Command, ParseError> {
    let (rest, verb) = verb(line).map_err(|_| ParseError::Unknown)?;
    let verb = Verb::from_keyword(verb).ok_or(ParseError::Unknown)?;
    let args = arguments(rest)?;
    verb.build(&args, now)
}

/// CHECK and TAKETHIS as feeders write them, `VERB SP message-id` with the
/// verb in capitals, without the general grammar: a streaming peer sends
/// two of them per article, and the general way costs ~5 times as much.
/// `None` for anything else (another case or spacing, a bad message-id),
/// which the general grammar then parses to the same command or error.
fn streaming_command(line: &[u8]) -> Option<Command> {
    if let Some(id) = line.strip_prefix(b"TAKETHIS ") {
        MessageId::try_from(id).ok().map(Command::TakeThis)
    } else if let Some(id) = line.strip_prefix(b"CHECK ") {
        MessageId::try_from(id).ok().map(Command::Check)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Lexical rules (RFC 3977 §9.8, §9.9)
// ---------------------------------------------------------------------------

/// `WS = 1*(SP / TAB)`
fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// `WS = 1*(SP / TAB)`; leading and trailing whitespace on the line is
/// tolerated, so the optional form is used at both ends.
fn ws(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_ws)(i)
}

/// The verb: `keyword = ALPHA 2*(ALPHA / DIGIT / "." / "-")` (RFC 3977
/// §9.8), the first token of `X-command = keyword *(WS token)`. Anything
/// else in verb position (a digit, a control octet, non-ASCII) is not a
/// verb we know.
fn verb(i: &[u8]) -> IResult<&[u8], &[u8]> {
    preceded(
        take_while(is_ws),
        verify(take_till1(is_ws), |v: &[u8]| is_keyword(v)),
    )(i)
}

/// `keyword = ALPHA 2*(ALPHA / DIGIT / "." / "-")`
fn is_keyword(k: &[u8]) -> bool {
    match k.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest.len() >= 2
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-')
        }
        None => false,
    }
}

/// The arguments after the verb: `*(WS token)`, with optional trailing WS,
/// where `token = 1*P-CHAR`, `P-CHAR = A-CHAR / UTF8-non-ascii` and
/// `A-CHAR = %x21-7E`. A token with a control octet or invalid UTF-8 is a
/// syntax error of the (known) command.
fn arguments(i: &[u8]) -> Result<Vec<&str>, ParseError> {
    let raw: IResult<&[u8], Vec<&[u8]>> =
        all_consuming(terminated(many0(preceded(ws, take_till1(is_ws))), opt(ws)))(i);
    let (_, raw) = raw.map_err(|_| syntax("malformed arguments"))?;
    raw.into_iter()
        .map(|t| {
            let s = std::str::from_utf8(t).map_err(|_| syntax("argument is not valid UTF-8"))?;
            if s.chars().any(char::is_control) {
                return Err(syntax("control character in argument"));
            }
            Ok(s)
        })
        .collect()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// Runs a token parser over a whole token.
fn whole<'a, O>(
    parser: impl FnMut(&'a str) -> IResult<&'a str, O>,
    token: &'a str,
    what: &str,
) -> Result<O, ParseError> {
    all_consuming(parser)(token)
        .map(|(_, o)| o)
        .map_err(|_| syntax(format!("invalid {what}")))
}

/// `article-number = 1*16DIGIT` (RFC 3977 §9.8), and §6: numbers start at 1.
/// The value is also kept within `MAX_ARTICLE_NUMBER`.
fn article_number(i: &str) -> IResult<&str, ArticleNumber> {
    map_res(
        take_while_m_n(1, 16, is_digit),
        |d: &str| match d.parse::<ArticleNumber>() {
            // RFC 3977 §9.8 admits 0 (1*16DIGIT); clients send `0-` to mean
            // "everything". No article has number 0, so ARTICLE 0 is a 423.
            Ok(n) if n <= MAX_ARTICLE_NUMBER => Ok(n),
            _ => Err(()),
        },
    )(i)
}

/// `range = article-number ["-" [article-number]]` (RFC 3977 §9.8).
/// `n-m` with m < n is allowed: it selects nothing (§6.1.2.2).
fn range(i: &str) -> IResult<&str, Range> {
    map(
        pair(
            article_number,
            opt(preceded(char('-'), opt(article_number))),
        ),
        |(low, tail)| match tail {
            None => Range::single(low),
            Some(high) => Range { low, high },
        },
    )(i)
}

/// `A-NOTGT = %x21-3D / %x3F-7E`
fn is_a_notgt(c: char) -> bool {
    matches!(c, '\x21'..='\x3d' | '\x3f'..='\x7e')
}

/// `message-id = "<" 1*248A-NOTGT ">"` (RFC 3977 §9.8); `MessageId`
/// applies the rest of §3.6 (no `<` inside).
fn message_id(i: &str) -> IResult<&str, MessageId> {
    map_res(
        recognize(tuple((
            char('<'),
            take_while_m_n(1, 248, is_a_notgt),
            char('>'),
        ))),
        MessageId::try_from,
    )(i)
}

/// `wildmat-exact = %x22-29 / %x2B / %x2D-3E / %x40-5A / %x5E-7E /
/// UTF8-non-ascii` (RFC 3977 §9.8)
fn is_wildmat_exact(c: char) -> bool {
    matches!(c, '\x22'..='\x29' | '\x2b' | '\x2d'..='\x3e' | '\x40'..='\x5a' | '\x5e'..='\x7e')
        || !c.is_ascii()
}

/// `newsgroup-name = 1*wildmat-exact` (RFC 3977 §9.8); `GroupName` adds
/// RFC 5536's dotted components and ASCII-only rule.
fn newsgroup_name(i: &str) -> IResult<&str, GroupName> {
    map_res(take_while1(is_wildmat_exact), GroupName::try_from)(i)
}

/// `article-ref = article-number / message-id` (RFC 3977 §9.8)
fn article_ref(i: &str) -> IResult<&str, ArticleRef> {
    alt((
        map(message_id, ArticleRef::MessageId),
        map(article_number, ArticleRef::Number),
    ))(i)
}

/// `range-ref = range / message-id` (RFC 3977 §9.8)
fn range_ref(i: &str) -> IResult<&str, Selection> {
    alt((
        map(message_id, Selection::MessageId),
        map(range, Selection::Range),
    ))(i)
}

/// Reads an `article-ref` token, saying which of the two it failed to be.
fn article_ref_arg(token: &str) -> Result<ArticleRef, ParseError> {
    let what = if token.starts_with('<') {
        "message-id"
    } else {
        "article number"
    };
    whole(article_ref, token, what)
}

/// Reads a `range-ref` token, saying which of the two it failed to be.
fn range_ref_arg(token: &str) -> Result<Selection, ParseError> {
    let what = if token.starts_with('<') {
        "message-id"
    } else {
        "range"
    };
    whole(range_ref, token, what)
}

/// `A-NOTCOLON = %x21-39 / %x3B-7E`
fn is_a_notcolon(c: char) -> bool {
    matches!(c, '\x21'..='\x39' | '\x3b'..='\x7e')
}

/// `header-meta-name = header-name / metadata-name`,
/// `header-name = 1*A-NOTCOLON`, `metadata-name = ":" 1*A-NOTCOLON`
/// (RFC 3977 §9.8, §9.5.3)
fn header_meta_name(i: &str) -> IResult<&str, &str> {
    recognize(pair(opt(char(':')), take_while1(is_a_notcolon)))(i)
}

/// Two decimal digits.
fn two_digits(i: &str) -> IResult<&str, u32> {
    map_res(take_while_m_n(2, 2, is_digit), str::parse::<u32>)(i)
}

/// A date as written, before the century of a two-digit year is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Year {
    Full(i32),
    TwoDigit(u32),
}

/// `date = date2y / date4y`, `date4y = 4DIGIT 2DIGIT 2DIGIT`,
/// `date2y = 2DIGIT 2DIGIT 2DIGIT` (RFC 3977 §9.8; meaning in §7.3.2:
/// year, month, day).
fn date(i: &str) -> IResult<&str, (Year, u32, u32)> {
    let date4y = map(
        tuple((
            map_res(take_while_m_n(4, 4, is_digit), str::parse::<i32>),
            two_digits,
            two_digits,
        )),
        |(y, m, d)| (Year::Full(y), m, d),
    );
    let date2y = map(tuple((two_digits, two_digits, two_digits)), |(y, m, d)| {
        (Year::TwoDigit(y), m, d)
    });
    alt((date4y, date2y))(i)
}

/// `time = 2DIGIT 2DIGIT 2DIGIT` (RFC 3977 §9.8: hours, minutes, seconds)
fn time(i: &str) -> IResult<&str, (u32, u32, u32)> {
    tuple((two_digits, two_digits, two_digits))(i)
}

/// RFC 3977 §7.3.2: a two-digit year "is taken from the current century if
/// yy is smaller than or equal to the current year, and the previous
/// century otherwise" — a "since" date is never in the future.
fn full_year(yy: u32, now: DateTime<Utc>) -> i32 {
    let current = now.year();
    let century = current - current.rem_euclid(100);
    let yy = yy as i32; // two digits: at most 99
    if yy <= current.rem_euclid(100) {
        century + yy
    } else {
        century - 100 + yy
    }
}

/// `date-time = date WS time [WS "GMT"]` (RFC 3977 §9.8), given as its
/// tokens. The server's clock is UTC, so the time is UTC with or without
/// `GMT` (§7.3.2).
fn date_time(tokens: &[&str], now: DateTime<Utc>) -> Result<DateTime<Utc>, ParseError> {
    let (d, t) = match tokens {
        [d, t] => (d, t),
        [d, t, gmt] => {
            whole(tag_no_case("GMT"), gmt, "time zone: only GMT is allowed")?;
            (d, t)
        }
        _ => return Err(syntax("expected date, time and optional GMT")),
    };
    let (year, month, day) = whole(date, d, "date")?;
    let (hour, minute, second) = whole(time, t, "time")?;
    let year = match year {
        Year::Full(y) => y,
        Year::TwoDigit(yy) => full_year(yy, now),
    };
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| syntax("invalid date"))?;
    let datetime = date
        .and_hms_opt(hour, minute, second)
        .ok_or_else(|| syntax("invalid time"))?;
    Ok(datetime.and_utc())
}

/// A client's wildmat: `wildmat = wildmat-pattern *("," ["!"] wildmat-pattern)`
/// (RFC 3977 §4.1), never with INN's `@`.
fn wildmat_arg(token: &str) -> Result<Wildmat, ParseError> {
    Wildmat::parse(token, false).map_err(|e| syntax(e.to_string()))
}

fn optional_wildmat(verb: &str, rest: &[&str]) -> Result<Option<Wildmat>, ParseError> {
    match rest {
        [] => Ok(None),
        [w] => wildmat_arg(w).map(Some),
        _ => Err(syntax(format!("{verb} takes at most one wildmat"))),
    }
}

/// `mechanism = 1*20mech-char`, `mech-char = UPPER / DIGIT / "-" / "_"`
/// (RFC 4643 §4). Lower case is accepted and folded: mechanism names are
/// case-insensitive in practice.
fn mechanism(i: &str) -> IResult<&str, String> {
    map(
        take_while_m_n(1, 20, |c: char| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        }),
        str::to_ascii_uppercase,
    )(i)
}

/// `initial-response = base64-opt`, `base64-opt = "=" / base64`
/// (RFC 4643 §4), where `base64` is `1*base64-char` with at most two `=`
/// of padding at the end.
fn initial_response(i: &str) -> IResult<&str, &str> {
    alt((
        recognize(pair(
            take_while1(|c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/'),
            take_while_m_n(0, 2, |c| c == '='),
        )),
        recognize(char('=')),
    ))(i)
}

// ---------------------------------------------------------------------------
// Commands (RFC 3977 §9.3, RFC 4644 §5, RFC 4643 §4, RFC 4642, RFC 2980)
// ---------------------------------------------------------------------------

/// The verbs we know. Matching the verb first means an unknown verb is a
/// 500 whatever follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Capabilities,
    Mode,
    Quit,
    Help,
    Date,
    Group,
    ListGroup,
    Last,
    Next,
    Article(Part),
    Post,
    Ihave,
    Check,
    TakeThis,
    NewGroups,
    NewNews,
    List,
    Over,
    XOver,
    Hdr,
    XHdr,
    XPat,
    XGTitle,
    Authinfo,
    StartTls,
    Compress,
}

const VERBS: &[(&str, Verb)] = &[
    ("CAPABILITIES", Verb::Capabilities),
    ("MODE", Verb::Mode),
    ("QUIT", Verb::Quit),
    ("HELP", Verb::Help),
    ("DATE", Verb::Date),
    ("GROUP", Verb::Group),
    ("LISTGROUP", Verb::ListGroup),
    ("LAST", Verb::Last),
    ("NEXT", Verb::Next),
    ("ARTICLE", Verb::Article(Part::Article)),
    ("HEAD", Verb::Article(Part::Head)),
    ("BODY", Verb::Article(Part::Body)),
    ("STAT", Verb::Article(Part::Stat)),
    ("POST", Verb::Post),
    ("IHAVE", Verb::Ihave),
    ("CHECK", Verb::Check),
    ("TAKETHIS", Verb::TakeThis),
    ("NEWGROUPS", Verb::NewGroups),
    ("NEWNEWS", Verb::NewNews),
    ("LIST", Verb::List),
    ("OVER", Verb::Over),
    ("XOVER", Verb::XOver),
    ("HDR", Verb::Hdr),
    ("XHDR", Verb::XHdr),
    ("XPAT", Verb::XPat),
    ("XGTITLE", Verb::XGTitle),
    ("AUTHINFO", Verb::Authinfo),
    ("STARTTLS", Verb::StartTls),
    ("COMPRESS", Verb::Compress),
];

impl Verb {
    fn from_keyword(k: &[u8]) -> Option<Verb> {
        VERBS
            .iter()
            .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(k))
            .map(|&(_, verb)| verb)
    }

    fn name(self) -> &'static str {
        VERBS
            .iter()
            .find(|&&(_, v)| v == self)
            .map_or("command", |&(name, _)| name)
    }

    fn build(self, args: &[&str], now: DateTime<Utc>) -> Result<Command, ParseError> {
        let name = self.name();
        let no_args = |command: Command| match args {
            [] => Ok(command),
            _ => Err(syntax(format!("{name} takes no arguments"))),
        };
        match self {
            Verb::Capabilities => capabilities(args),
            Verb::Mode => mode(args),
            Verb::Quit => no_args(Command::Quit),
            Verb::Help => no_args(Command::Help),
            Verb::Date => no_args(Command::Date),
            Verb::Last => no_args(Command::Last),
            Verb::Next => no_args(Command::Next),
            Verb::Post => no_args(Command::Post),
            Verb::StartTls => no_args(Command::StartTls),
            Verb::Group => group(args),
            Verb::ListGroup => listgroup(args),
            Verb::Article(part) => article(name, part, args),
            Verb::Ihave => message_id_command(name, args).map(Command::Ihave),
            Verb::Check => message_id_command(name, args).map(Command::Check),
            Verb::TakeThis => message_id_command(name, args).map(Command::TakeThis),
            Verb::NewGroups => newgroups(args, now),
            Verb::NewNews => newnews(args, now),
            Verb::List => list(args),
            Verb::Over => over(args, false),
            Verb::XOver => over(args, true),
            Verb::Hdr => hdr(name, args, false),
            Verb::XHdr => hdr(name, args, true),
            Verb::XPat => xpat(args),
            Verb::XGTitle => optional_wildmat(name, args).map(Command::XGTitle),
            Verb::Authinfo => authinfo(args),
            Verb::Compress => compress(args),
        }
    }
}

/// `capabilities-command = "CAPABILITIES" [WS keyword]` (RFC 3977 §9.3);
/// the keyword selects nothing we offer, so it is ignored.
fn capabilities(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [] | [_] => Ok(Command::Capabilities),
        _ => Err(syntax("CAPABILITIES takes at most one keyword")),
    }
}

/// `compress-command = "COMPRESS" WS algorithm` (RFC 8054 §5.1), where
/// an algorithm is 1 to 20 of upper case letters, digits, `-` and `_`
/// (§5.3: case matters, so `deflate` is a syntax error, 501).
fn compress(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [a] if super::deflate::is_algorithm_name(a) => Ok(Command::Compress((*a).to_owned())),
        [_] => Err(syntax(
            "a compression algorithm is 1 to 20 of A-Z, 0-9, - and _",
        )),
        _ => Err(syntax("COMPRESS takes one algorithm")),
    }
}

/// `mode-reader-command = "MODE" WS "READER"` (RFC 3977 §9.3),
/// `mode-stream-command = "MODE" WS "STREAM"` (RFC 4644 §5)
fn mode(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [m] if m.eq_ignore_ascii_case("READER") => Ok(Command::ModeReader),
        [m] if m.eq_ignore_ascii_case("STREAM") => Ok(Command::ModeStream),
        _ => Err(syntax("MODE takes READER or STREAM")),
    }
}

/// `group-command = "GROUP" [WS newsgroup-name]` (RFC 3977 §9.3); the
/// group is required by §6.1.1.
fn group(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [g] => whole(newsgroup_name, g, "newsgroup name").map(Command::Group),
        [] => Err(syntax("GROUP needs a newsgroup name")),
        _ => Err(syntax("GROUP takes one newsgroup name")),
    }
}

/// `listgroup-command = "LISTGROUP" [WS newsgroup-name [WS range]]`
/// (RFC 3977 §9.3)
fn listgroup(args: &[&str]) -> Result<Command, ParseError> {
    let (group, range_token) = match args {
        [] => (None, None),
        [g] => (Some(g), None),
        [g, r] => (Some(g), Some(r)),
        _ => return Err(syntax("LISTGROUP takes a newsgroup name and a range")),
    };
    Ok(Command::ListGroup {
        group: group
            .map(|g| whole(newsgroup_name, g, "newsgroup name"))
            .transpose()?,
        range: range_token.map(|r| whole(range, r, "range")).transpose()?,
    })
}

/// `article-command = "ARTICLE" [WS article-ref]`, and the same for
/// `body-command`, `head-command`, `stat-command` (RFC 3977 §9.3)
fn article(name: &str, part: Part, args: &[&str]) -> Result<Command, ParseError> {
    match args {
        [] => Ok(Command::Article(part, ArticleRef::Current)),
        [r] => article_ref_arg(r).map(|r| Command::Article(part, r)),
        _ => Err(syntax(format!(
            "{name} takes one article number or message-id"
        ))),
    }
}

/// `ihave-command = "IHAVE" WS message-id` (RFC 3977 §9.3),
/// `check-command = "CHECK" WS message-id`,
/// `takethis-command = "TAKETHIS" WS message-id` (RFC 4644 §5)
fn message_id_command(name: &str, args: &[&str]) -> Result<MessageId, ParseError> {
    match args {
        [m] => whole(message_id, m, "message-id"),
        [] => Err(syntax(format!("{name} needs a message-id"))),
        _ => Err(syntax(format!("{name} takes one message-id"))),
    }
}

/// `newgroups-command = "NEWGROUPS" WS date-time` (RFC 3977 §9.3)
fn newgroups(args: &[&str], now: DateTime<Utc>) -> Result<Command, ParseError> {
    if args.len() < 2 {
        return Err(syntax("NEWGROUPS needs a date and a time"));
    }
    date_time(args, now).map(|since| Command::NewGroups { since })
}

/// `newnews-command = "NEWNEWS" WS wildmat WS date-time` (RFC 3977 §9.3)
fn newnews(args: &[&str], now: DateTime<Utc>) -> Result<Command, ParseError> {
    match args {
        [w, rest @ ..] if rest.len() >= 2 => {
            let wildmat = wildmat_arg(w)?;
            let since = date_time(rest, now)?;
            Ok(Command::NewNews { wildmat, since })
        }
        _ => Err(syntax("NEWNEWS needs a wildmat, a date and a time")),
    }
}

/// `list-command = "LIST" [WS list-arguments]`,
/// `list-arguments = keyword [WS token]` (RFC 3977 §9.3), with
/// (§9.5.1, RFC 6048 §2):
/// ```text
/// list-arguments =/ "ACTIVE" [WS wildmat]
/// list-arguments =/ "ACTIVE.TIMES" [WS wildmat]
/// list-arguments =/ "DISTRIB.PATS"
/// list-arguments =/ "HEADERS" [WS ("MSGID" / "RANGE")]
/// list-arguments =/ "NEWSGROUPS" [WS wildmat]
/// list-arguments =/ "OVERVIEW.FMT"
/// list-arguments =/ "COUNTS" [WS wildmat]
/// list-arguments =/ "DISTRIBUTIONS"
/// list-arguments =/ "MODERATORS"
/// list-arguments =/ "MOTD"
/// list-arguments =/ "SUBSCRIPTIONS" [WS wildmat]
/// ```
fn list(args: &[&str]) -> Result<Command, ParseError> {
    let Some((keyword, rest)) = args.split_first() else {
        return Ok(Command::List(ListKind::Active(None)));
    };
    let keyword = keyword.to_ascii_uppercase();
    let bare = |kind: ListKind| match rest {
        [] => Ok(kind),
        _ => Err(syntax(format!("LIST {keyword} takes no argument"))),
    };
    let wildmat = || optional_wildmat(&format!("LIST {keyword}"), rest);
    let kind = match keyword.as_str() {
        "ACTIVE" => ListKind::Active(wildmat()?),
        "ACTIVE.TIMES" => ListKind::ActiveTimes(wildmat()?),
        "NEWSGROUPS" => ListKind::Newsgroups(wildmat()?),
        "COUNTS" => ListKind::Counts(wildmat()?),
        "SUBSCRIPTIONS" => ListKind::Subscriptions(wildmat()?),
        "OVERVIEW.FMT" => bare(ListKind::OverviewFmt)?,
        "DISTRIB.PATS" => bare(ListKind::DistribPats)?,
        "DISTRIBUTIONS" => bare(ListKind::Distributions)?,
        "MODERATORS" => bare(ListKind::Moderators)?,
        "MOTD" => bare(ListKind::Motd)?,
        "HEADERS" => ListKind::Headers(match rest {
            [] => None,
            [a] if a.eq_ignore_ascii_case("MSGID") => Some(HeadersArg::MsgId),
            [a] if a.eq_ignore_ascii_case("RANGE") => Some(HeadersArg::Range),
            _ => return Err(syntax("LIST HEADERS takes MSGID or RANGE")),
        }),
        _ => return Err(syntax("unknown LIST keyword")),
    };
    Ok(Command::List(kind))
}

/// `over-command = "OVER" [WS range-ref]` (RFC 3977 §9.5.2);
/// `XOVER [range]` (RFC 2980 §2.8), where we also take a message-id.
fn over(args: &[&str], legacy: bool) -> Result<Command, ParseError> {
    let selection = match args {
        [] => Selection::Current,
        [r] => range_ref_arg(r)?,
        _ => {
            let name = if legacy { "XOVER" } else { "OVER" };
            return Err(syntax(format!("{name} takes one range or message-id")));
        }
    };
    Ok(Command::Over { selection, legacy })
}

/// `hdr-command = "HDR" WS header-meta-name [WS range-ref]`
/// (RFC 3977 §9.5.3); `XHDR header [range|<message-id>]` (RFC 2980 §2.6)
fn hdr(name: &str, args: &[&str], legacy: bool) -> Result<Command, ParseError> {
    let (field, selection) = match args {
        [f] => (f, Selection::Current),
        [f, r] => (f, range_ref_arg(r)?),
        [] => return Err(syntax(format!("{name} needs a header name"))),
        _ => {
            return Err(syntax(format!(
                "{name} takes a header name and one range or message-id"
            )));
        }
    };
    let field = whole(header_meta_name, field, "header name")?.to_owned();
    Ok(Command::Hdr {
        field,
        selection,
        legacy,
    })
}

/// `XPAT header range|<message-id> pat [pat...]` (RFC 2980 §2.9); each
/// `pat` must be a valid wildmat, kept as written.
fn xpat(args: &[&str]) -> Result<Command, ParseError> {
    let [field, selection, patterns @ ..] = args else {
        return Err(syntax(
            "XPAT needs a header name, a range or message-id, and a pattern",
        ));
    };
    if patterns.is_empty() {
        return Err(syntax("XPAT needs at least one pattern"));
    }
    let field = whole(header_meta_name, field, "header name")?.to_owned();
    let selection = range_ref_arg(selection)?;
    let patterns = patterns
        .iter()
        .map(|p| wildmat_arg(p).map(|_| (*p).to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Command::XPat {
        field,
        selection,
        patterns,
    })
}

/// RFC 4643 §4:
/// ```text
/// authinfo-sasl-command = "AUTHINFO" WS "SASL" WS mechanism [WS initial-response]
/// authinfo-user-command = "AUTHINFO" WS "USER" WS user-name
/// authinfo-pass-command = "AUTHINFO" WS "PASS" WS user-pass
/// user-name = 1*user-name-char     ; user-name-char = %x21-7E / UTF8-non-ascii
/// user-pass = 1*user-pass-char     ; user-pass-char = %x21-7E / UTF8-non-ascii
/// ```
/// Each is one token, so a password with a space is refused.
fn authinfo(args: &[&str]) -> Result<Command, ParseError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(syntax("AUTHINFO needs USER, PASS or SASL"));
    };
    let sub = sub.to_ascii_uppercase();
    match (sub.as_str(), rest) {
        ("USER", [user]) => Ok(Command::AuthinfoUser((*user).to_owned())),
        ("USER", _) => Err(syntax("AUTHINFO USER needs one user name")),
        ("PASS", [pass]) => Ok(Command::AuthinfoPass((*pass).to_owned())),
        ("PASS", _) => Err(syntax("AUTHINFO PASS needs one password")),
        ("SASL", [mech, initial @ ..]) if initial.len() <= 1 => {
            let mechanism = whole(mechanism, mech, "SASL mechanism")?;
            let initial = initial
                .first()
                .map(|r| whole(initial_response, r, "SASL initial response"))
                .transpose()?
                .map(str::to_owned);
            Ok(Command::AuthinfoSasl { mechanism, initial })
        }
        ("SASL", _) => Err(syntax(
            "AUTHINFO SASL needs a mechanism and at most an initial response",
        )),
        _ => Err(syntax("AUTHINFO takes USER, PASS or SASL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ok(line: &str) -> Command {
        parse_command(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e:?}"))
    }

    fn syntax_err(line: &str) {
        match parse_command(line.as_bytes()) {
            Err(ParseError::Syntax(_)) => {}
            other => panic!("{line:?}: expected Syntax, got {other:?}"),
        }
    }

    fn unknown(line: &[u8]) {
        assert_eq!(parse_command(line), Err(ParseError::Unknown), "{line:?}");
    }

    fn g(s: &str) -> GroupName {
        GroupName::try_from(s).unwrap()
    }

    fn mid(s: &str) -> MessageId {
        MessageId::try_from(s).unwrap()
    }

    fn wm(s: &str) -> Wildmat {
        Wildmat::parse(s, false).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn unknown_verbs_are_500() {
        unknown(b"FOO");
        unknown(b"FOO bar");
        unknown(b"");
        unknown(b"   ");
        unknown(b"GROUPS misc.test");
        unknown(b"\xffGROUP");
        unknown(b"GR\x00UP misc.test");
        unknown(b"1234");
        unknown(b"XZVER 1-2");
        unknown(b"FOO \x01\xff");
    }

    #[test]
    fn verbs_are_case_insensitive_and_whitespace_is_tolerated() {
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("QuIt"), Command::Quit);
        assert_eq!(ok("  QUIT \t "), Command::Quit);
        assert_eq!(ok("group\t \tmisc.test  "), Command::Group(g("misc.test")));
    }

    #[test]
    fn compress_takes_one_algorithm_in_upper_case() {
        // RFC 8054 §5: the verb is case-insensitive, the algorithm is not.
        assert_eq!(ok("COMPRESS DEFLATE"), Command::Compress("DEFLATE".into()));
        assert_eq!(
            ok("compress X-SHRINK_2"),
            Command::Compress("X-SHRINK_2".into())
        );
        for line in [
            "COMPRESS",
            "COMPRESS deflate",
            "COMPRESS DEFLATE DEFLATE",
            "COMPRESS ABCDEFGHIJKLMNOPQRSTU",
            "COMPRESS DE.FLATE",
        ] {
            syntax_err(line);
        }
    }

    #[test]
    fn commands_without_arguments() {
        assert_eq!(ok("CAPABILITIES"), Command::Capabilities);
        assert_eq!(ok("CAPABILITIES AUTOUPDATE"), Command::Capabilities);
        assert_eq!(ok("QUIT"), Command::Quit);
        assert_eq!(ok("HELP"), Command::Help);
        assert_eq!(ok("DATE"), Command::Date);
        assert_eq!(ok("LAST"), Command::Last);
        assert_eq!(ok("NEXT"), Command::Next);
        assert_eq!(ok("POST"), Command::Post);
        assert_eq!(ok("STARTTLS"), Command::StartTls);
        for line in [
            "CAPABILITIES a b",
            "QUIT now",
            "HELP me",
            "DATE x",
            "LAST 1",
            "NEXT 1",
            "POST x",
            "STARTTLS x",
        ] {
            syntax_err(line);
        }
    }

    #[test]
    fn mode() {
        assert_eq!(ok("MODE READER"), Command::ModeReader);
        assert_eq!(ok("mode reader"), Command::ModeReader);
        assert_eq!(ok("MODE STREAM"), Command::ModeStream);
        syntax_err("MODE");
        syntax_err("MODE POSTER");
        syntax_err("MODE READER now");
    }

    #[test]
    fn group() {
        // RFC 3977 §6.1.1.3
        assert_eq!(ok("GROUP misc.test"), Command::Group(g("misc.test")));
        syntax_err("GROUP");
        syntax_err("GROUP misc.*");
        syntax_err("GROUP misc..test");
        syntax_err("GROUP a b");
        syntax_err("GROUP caf\u{e9}");
        syntax_err("GROUP misc\u{1}test");
        syntax_err("GROUP misc.\u{7f}");
    }

    #[test]
    fn listgroup() {
        // RFC 3977 §6.1.2.3
        assert_eq!(
            ok("LISTGROUP"),
            Command::ListGroup {
                group: None,
                range: None
            }
        );
        assert_eq!(
            ok("LISTGROUP misc.test"),
            Command::ListGroup {
                group: Some(g("misc.test")),
                range: None
            }
        );
        assert_eq!(
            ok("LISTGROUP misc.test 3000238-3000248"),
            Command::ListGroup {
                group: Some(g("misc.test")),
                range: Some(Range {
                    low: 3000238,
                    high: Some(3000248)
                })
            }
        );
        assert_eq!(
            ok("LISTGROUP example.empty.newsgroup 12345678-"),
            Command::ListGroup {
                group: Some(g("example.empty.newsgroup")),
                range: Some(Range {
                    low: 12345678,
                    high: None
                })
            }
        );
        // m < n is an empty range, not an error (§6.1.2.2).
        assert_eq!(
            ok("LISTGROUP misc.test 9-3"),
            Command::ListGroup {
                group: Some(g("misc.test")),
                range: Some(Range {
                    low: 9,
                    high: Some(3)
                })
            }
        );
        syntax_err("LISTGROUP misc.test 5-x");
        syntax_err("LISTGROUP misc.test -5");
        syntax_err("LISTGROUP misc.test 1-2-3");
        syntax_err("LISTGROUP misc.test 1 2");
        syntax_err("LISTGROUP misc*");
    }

    #[test]
    fn article_family() {
        // RFC 3977 §6.2.1.3 and §6.2.4.3
        assert_eq!(
            ok("ARTICLE"),
            Command::Article(Part::Article, ArticleRef::Current)
        );
        assert_eq!(
            ok("ARTICLE 3000234"),
            Command::Article(Part::Article, ArticleRef::Number(3000234))
        );
        assert_eq!(
            ok("ARTICLE <45223423@example.com>"),
            Command::Article(
                Part::Article,
                ArticleRef::MessageId(mid("<45223423@example.com>"))
            )
        );
        assert_eq!(
            ok("head 300256"),
            Command::Article(Part::Head, ArticleRef::Number(300256))
        );
        assert_eq!(
            ok("BODY <i.am.not.there@example.com>"),
            Command::Article(
                Part::Body,
                ArticleRef::MessageId(mid("<i.am.not.there@example.com>"))
            )
        );
        assert_eq!(
            ok("STAT"),
            Command::Article(Part::Stat, ArticleRef::Current)
        );
        assert_eq!(
            ok("STAT 9999999999999999"),
            Command::Article(Part::Stat, ArticleRef::Number(9999999999999999))
        );
        assert_eq!(
            ok("ARTICLE 0"),
            Command::Article(Part::Article, ArticleRef::Number(0))
        );
        syntax_err("ARTICLE 12345678901234567");
        syntax_err("ARTICLE 99999999999999999999999");
        syntax_err("ARTICLE -1");
        syntax_err("ARTICLE 1-2");
        syntax_err("ARTICLE <bad");
        syntax_err("ARTICLE <>");
        syntax_err("ARTICLE <a<b@c>");
        syntax_err("ARTICLE <a@b> 1");
        syntax_err("HEAD x");
        assert_eq!(
            parse_command(b"ARTICLE abc"),
            Err(ParseError::Syntax("invalid article number".into()))
        );
        assert_eq!(
            parse_command(b"ARTICLE <bad"),
            Err(ParseError::Syntax("invalid message-id".into()))
        );
    }

    #[test]
    fn ihave_check_takethis() {
        // RFC 3977 §6.3.2.3, RFC 4644 §2.4.3, §2.5.3
        let id = mid("<i.am.an.article.you.will.want@example.com>");
        assert_eq!(
            ok("IHAVE <i.am.an.article.you.will.want@example.com>"),
            Command::Ihave(id.clone())
        );
        assert_eq!(
            ok("CHECK <i.am.an.article.you.will.want@example.com>"),
            Command::Check(id.clone())
        );
        assert_eq!(
            ok("TAKETHIS <i.am.an.article.you.will.want@example.com>"),
            Command::TakeThis(id)
        );
        for verb in ["IHAVE", "CHECK", "TAKETHIS"] {
            syntax_err(verb);
            syntax_err(&format!("{verb} 1234"));
            syntax_err(&format!("{verb} <a@b> <c@d>"));
            syntax_err(&format!("{verb} <a b@c>"));
        }
        let long = format!("CHECK <{}@x>", "a".repeat(247));
        syntax_err(&long);
    }

    #[test]
    fn newgroups() {
        // RFC 3977 §7.3.3
        assert_eq!(
            ok("NEWGROUPS 19990624 000000 GMT"),
            Command::NewGroups {
                since: utc(1999, 6, 24, 0, 0, 0)
            }
        );
        assert_eq!(
            ok("NEWGROUPS 990624 000000"),
            Command::NewGroups {
                since: utc(1999, 6, 24, 0, 0, 0)
            }
        );
        assert_eq!(
            ok("newgroups 20240229 235959 gmt"),
            Command::NewGroups {
                since: utc(2024, 2, 29, 23, 59, 59)
            }
        );
        syntax_err("NEWGROUPS");
        syntax_err("NEWGROUPS 19990624");
        syntax_err("NEWGROUPS 19991324 000000");
        syntax_err("NEWGROUPS 20230229 000000");
        syntax_err("NEWGROUPS 19990230 000000");
        syntax_err("NEWGROUPS 19990624 240000");
        syntax_err("NEWGROUPS 19990624 006000");
        syntax_err("NEWGROUPS 1999062 000000");
        syntax_err("NEWGROUPS 19990624 00000");
        syntax_err("NEWGROUPS 19990624 000000 UTC");
        syntax_err("NEWGROUPS 19990624 000000 GMT x");
        syntax_err("NEWGROUPS +9990624 000000");
    }

    #[test]
    fn two_digit_years_are_never_in_the_future() {
        // RFC 3977 §7.3.2
        let now = utc(2026, 11, 25, 12, 0, 0);
        let since = |line: &str| match parse_command_at(line.as_bytes(), now) {
            Ok(Command::NewGroups { since }) => since,
            other => panic!("{other:?}"),
        };
        assert_eq!(since("NEWGROUPS 260101 000000"), utc(2026, 1, 1, 0, 0, 0));
        assert_eq!(since("NEWGROUPS 000101 000000"), utc(2000, 1, 1, 0, 0, 0));
        assert_eq!(since("NEWGROUPS 270101 000000"), utc(1927, 1, 1, 0, 0, 0));
        assert_eq!(since("NEWGROUPS 990624 000000"), utc(1999, 6, 24, 0, 0, 0));
        assert_eq!(full_year(0, utc(2100, 1, 1, 0, 0, 0)), 2100);
        assert_eq!(full_year(1, utc(2100, 1, 1, 0, 0, 0)), 2001);
    }

    #[test]
    fn newnews() {
        // RFC 3977 §7.4.3
        assert_eq!(
            ok("NEWNEWS news.*,sci.* 19990624 000000 GMT"),
            Command::NewNews {
                wildmat: wm("news.*,sci.*"),
                since: utc(1999, 6, 24, 0, 0, 0)
            }
        );
        assert_eq!(
            ok("NEWNEWS alt.* 20240101 120000"),
            Command::NewNews {
                wildmat: wm("alt.*"),
                since: utc(2024, 1, 1, 12, 0, 0)
            }
        );
        syntax_err("NEWNEWS");
        syntax_err("NEWNEWS news.*");
        syntax_err("NEWNEWS news.* 19990624");
        syntax_err("NEWNEWS 19990624 000000");
        syntax_err("NEWNEWS news.*,,sci.* 19990624 000000");
        syntax_err("NEWNEWS news.[ 19990624 000000");
        syntax_err("NEWNEWS news.* 19990624 000000 GMT extra");
    }

    #[test]
    fn clients_cannot_poison() {
        // `@` is an ordinary character in a client's wildmat.
        match ok("NEWNEWS @news.* 19990624 000000") {
            Command::NewNews { wildmat, .. } => {
                assert!(wildmat.matches("@news.x"));
                assert!(!wildmat.poisoned("news.x"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list() {
        // RFC 3977 §7.6.1.3 .. §8.6, RFC 6048 §2
        let list = |k: ListKind| Command::List(k);
        assert_eq!(ok("LIST"), list(ListKind::Active(None)));
        assert_eq!(ok("LIST ACTIVE"), list(ListKind::Active(None)));
        assert_eq!(
            ok("LIST ACTIVE misc.*"),
            list(ListKind::Active(Some(wm("misc.*"))))
        );
        assert_eq!(
            ok("list active.times comp.*"),
            list(ListKind::ActiveTimes(Some(wm("comp.*"))))
        );
        assert_eq!(ok("LIST ACTIVE.TIMES"), list(ListKind::ActiveTimes(None)));
        assert_eq!(ok("LIST NEWSGROUPS"), list(ListKind::Newsgroups(None)));
        assert_eq!(
            ok("LIST NEWSGROUPS misc.*,!misc.test"),
            list(ListKind::Newsgroups(Some(wm("misc.*,!misc.test"))))
        );
        assert_eq!(ok("LIST COUNTS"), list(ListKind::Counts(None)));
        assert_eq!(
            ok("LIST COUNTS a.*"),
            list(ListKind::Counts(Some(wm("a.*"))))
        );
        assert_eq!(ok("LIST OVERVIEW.FMT"), list(ListKind::OverviewFmt));
        assert_eq!(ok("LIST HEADERS"), list(ListKind::Headers(None)));
        assert_eq!(
            ok("LIST HEADERS MSGID"),
            list(ListKind::Headers(Some(HeadersArg::MsgId)))
        );
        assert_eq!(
            ok("list headers range"),
            list(ListKind::Headers(Some(HeadersArg::Range)))
        );
        assert_eq!(ok("LIST DISTRIB.PATS"), list(ListKind::DistribPats));
        assert_eq!(ok("LIST DISTRIBUTIONS"), list(ListKind::Distributions));
        assert_eq!(ok("LIST MODERATORS"), list(ListKind::Moderators));
        assert_eq!(ok("LIST MOTD"), list(ListKind::Motd));
        assert_eq!(
            ok("LIST SUBSCRIPTIONS"),
            list(ListKind::Subscriptions(None))
        );
        assert_eq!(
            ok("LIST SUBSCRIPTIONS news.*"),
            list(ListKind::Subscriptions(Some(wm("news.*"))))
        );
        assert_eq!(
            parse_command(b"LIST FOO"),
            Err(ParseError::Syntax("unknown LIST keyword".into()))
        );
        syntax_err("LIST ACTIVE a.* b.*");
        syntax_err("LIST ACTIVE a,,b");
        syntax_err("LIST OVERVIEW.FMT x");
        syntax_err("LIST MOTD x");
        syntax_err("LIST HEADERS FOO");
        syntax_err("LIST HEADERS MSGID RANGE");
        syntax_err("LIST EXTENSIONS");
    }

    #[test]
    fn over_and_xover() {
        // RFC 3977 §8.3.3, RFC 2980 §2.8
        assert_eq!(
            ok("OVER"),
            Command::Over {
                selection: Selection::Current,
                legacy: false
            }
        );
        assert_eq!(
            ok("OVER 3000234-3000240"),
            Command::Over {
                selection: Selection::Range(Range {
                    low: 3000234,
                    high: Some(3000240)
                }),
                legacy: false
            }
        );
        assert_eq!(
            ok("OVER <45223423@example.com>"),
            Command::Over {
                selection: Selection::MessageId(mid("<45223423@example.com>")),
                legacy: false
            }
        );
        assert_eq!(
            ok("XOVER 3000234-"),
            Command::Over {
                selection: Selection::Range(Range {
                    low: 3000234,
                    high: None
                }),
                legacy: true
            }
        );
        assert_eq!(
            ok("XOVER"),
            Command::Over {
                selection: Selection::Current,
                legacy: true
            }
        );
        assert_eq!(
            ok("xover <a@b>"),
            Command::Over {
                selection: Selection::MessageId(mid("<a@b>")),
                legacy: true
            }
        );
        syntax_err("OVER 1-2 3");
        syntax_err("OVER <bad");
        syntax_err("XOVER abc");
    }

    #[test]
    fn hdr_and_xhdr() {
        // RFC 3977 §8.5.3, RFC 2980 §2.6
        assert_eq!(
            ok("HDR Subject 3000234-3000238"),
            Command::Hdr {
                field: "Subject".into(),
                selection: Selection::Range(Range {
                    low: 3000234,
                    high: Some(3000238)
                }),
                legacy: false
            }
        );
        assert_eq!(
            ok("HDR :bytes 1-"),
            Command::Hdr {
                field: ":bytes".into(),
                selection: Selection::Range(Range { low: 1, high: None }),
                legacy: false
            }
        );
        assert_eq!(
            ok("HDR subject <i.am.an.article.you.will.want@example.com>"),
            Command::Hdr {
                field: "subject".into(),
                selection: Selection::MessageId(mid("<i.am.an.article.you.will.want@example.com>")),
                legacy: false
            }
        );
        assert_eq!(
            ok("HDR Subject"),
            Command::Hdr {
                field: "Subject".into(),
                selection: Selection::Current,
                legacy: false
            }
        );
        assert_eq!(
            ok("XHDR from 10"),
            Command::Hdr {
                field: "from".into(),
                selection: Selection::Range(Range::single(10)),
                legacy: true
            }
        );
        syntax_err("HDR");
        syntax_err("XHDR");
        syntax_err("HDR Subject: 1-");
        syntax_err("HDR : 1-");
        syntax_err("HDR ::bytes 1-");
        syntax_err("HDR Subject 1- 2");
    }

    #[test]
    fn xpat() {
        // RFC 2980 §2.9
        assert_eq!(
            ok("XPAT Subject 1-5 *foo* *bar*"),
            Command::XPat {
                field: "Subject".into(),
                selection: Selection::Range(Range {
                    low: 1,
                    high: Some(5)
                }),
                patterns: vec!["*foo*".into(), "*bar*".into()],
            }
        );
        assert_eq!(
            ok("xpat From <a@b> *fred*"),
            Command::XPat {
                field: "From".into(),
                selection: Selection::MessageId(mid("<a@b>")),
                patterns: vec!["*fred*".into()],
            }
        );
        syntax_err("XPAT");
        syntax_err("XPAT Subject");
        syntax_err("XPAT Subject 1-5");
        syntax_err("XPAT Subject x *foo*");
        syntax_err("XPAT Subject 1-5 *foo[");
    }

    #[test]
    fn xgtitle() {
        // RFC 2980 §2.7
        assert_eq!(ok("XGTITLE"), Command::XGTitle(None));
        match ok("xgtitle comp.*,!comp.os.*") {
            Command::XGTitle(Some(w)) => {
                assert!(w.matches("comp.lang.rust"));
                assert!(!w.matches("comp.os.linux"));
            }
            other => panic!("XGTITLE parsed as {other:?}"),
        }
        syntax_err("XGTITLE comp.* misc.*");
        syntax_err("XGTITLE comp.[");
    }

    #[test]
    fn authinfo() {
        // RFC 4643 §2.3.3, §2.4.3
        assert_eq!(
            ok("AUTHINFO USER wilma"),
            Command::AuthinfoUser("wilma".into())
        );
        assert_eq!(
            ok("authinfo pass flintstone"),
            Command::AuthinfoPass("flintstone".into())
        );
        assert_eq!(
            ok("AUTHINFO PASS p\u{e4}ss"),
            Command::AuthinfoPass("p\u{e4}ss".into())
        );
        assert_eq!(
            ok("AUTHINFO SASL PLAIN"),
            Command::AuthinfoSasl {
                mechanism: "PLAIN".into(),
                initial: None
            }
        );
        assert_eq!(
            ok("AUTHINFO SASL PLAIN AHRlc3QAMTIzNA=="),
            Command::AuthinfoSasl {
                mechanism: "PLAIN".into(),
                initial: Some("AHRlc3QAMTIzNA==".into())
            }
        );
        assert_eq!(
            ok("AUTHINFO SASL digest-md5 ="),
            Command::AuthinfoSasl {
                mechanism: "DIGEST-MD5".into(),
                initial: Some("=".into())
            }
        );
        syntax_err("AUTHINFO");
        syntax_err("AUTHINFO USER");
        syntax_err("AUTHINFO USER fred flintstone");
        syntax_err("AUTHINFO PASS");
        syntax_err("AUTHINFO PASS two words");
        syntax_err("AUTHINFO SASL");
        syntax_err("AUTHINFO SASL PL@IN");
        syntax_err("AUTHINFO SASL ABCDEFGHIJKLMNOPQRSTU");
        syntax_err("AUTHINFO SASL PLAIN a=b");
        syntax_err("AUTHINFO SASL PLAIN abc= x");
        syntax_err("AUTHINFO GENERIC x");
        assert!(matches!(
            parse_command(b"AUTHINFO PASS \xff\xfe"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn bad_octets_in_arguments_are_syntax_errors() {
        for line in [
            &b"GROUP misc.\xfftest"[..],
            b"GROUP misc.test\x00",
            b"AUTHINFO USER a\x1bb",
            b"LIST ACTIVE \x80",
            b"ARTICLE 1\r",
            b"ARTICLE 1\n",
        ] {
            assert!(
                matches!(parse_command(line), Err(ParseError::Syntax(_))),
                "{line:?}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Spells a verb in a random mixture of cases.
        fn any_case(word: &'static str) -> impl Strategy<Value = String> {
            proptest::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
                word.chars()
                    .zip(upper)
                    .map(|(c, u)| {
                        if u {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect()
            })
        }

        fn sep() -> impl Strategy<Value = String> {
            "[ \t]{1,3}"
        }

        fn group_name() -> impl Strategy<Value = String> {
            "[a-z0-9][a-z0-9+_-]{0,12}(\\.[a-z0-9+_-]{1,12}){0,4}"
        }

        fn number() -> impl Strategy<Value = u64> {
            1u64..=9_999_999_999_999_999
        }

        fn message_id() -> impl Strategy<Value = String> {
            "<[!-;=?-~]{1,60}@[a-z0-9.-]{1,30}>"
        }

        proptest! {
            #[test]
            fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = parse_command(&line);
            }

            #[test]
            fn never_panics_after_a_known_verb(
                verb in proptest::sample::select(VERBS.iter().map(|(v, _)| *v).collect::<Vec<_>>()),
                rest in proptest::collection::vec(any::<u8>(), 0..500),
            ) {
                let mut line = verb.as_bytes().to_vec();
                line.push(b' ');
                line.extend(rest);
                let _ = parse_command(&line);
            }

            #[test]
            fn never_panics_on_printable_lines(line in "[ -~\t]{0,512}") {
                let _ = parse_command(line.as_bytes());
            }

            #[test]
            fn check_and_takethis_parse_alike_either_way(
                verb in prop_oneof![
                    4 => proptest::sample::select(vec!["CHECK", "TAKETHIS"]),
                    1 => proptest::sample::select(vec!["check", "TakeThis", "IHAVE"]),
                ],
                s in prop_oneof![4 => Just(" ".to_owned()), 1 => "[ \t]{1,2}"],
                id in prop_oneof![
                    4 => message_id(),
                    1 => "[ -~]{0,40}",
                    1 => "<[!-~]{240,252}>",
                ],
                tail in prop_oneof![4 => Just(String::new()), 1 => "[ \t]{1,2}"],
            ) {
                let line = format!("{verb}{s}{id}{tail}");
                let general = parse_general(line.as_bytes(), Utc::now());
                prop_assert_eq!(parse_command(line.as_bytes()), general);
            }

            #[test]
            fn group_round_trips(verb in any_case("GROUP"), s in sep(), name in group_name()) {
                let expected = Command::Group(GroupName::try_from(name.as_str()).unwrap());
                prop_assert_eq!(parse_command(format!("{verb}{s}{name}").as_bytes()), Ok(expected));
            }

            #[test]
            fn article_round_trips(verb in any_case("ARTICLE"), s in sep(), n in number()) {
                let expected = Command::Article(Part::Article, ArticleRef::Number(n));
                prop_assert_eq!(parse_command(format!("{verb}{s}{n}").as_bytes()), Ok(expected));
            }

            #[test]
            fn stat_by_message_id_round_trips(verb in any_case("STAT"), s in sep(), id in message_id()) {
                let expected = Command::Article(
                    Part::Stat,
                    ArticleRef::MessageId(MessageId::try_from(id.as_str()).unwrap()),
                );
                prop_assert_eq!(parse_command(format!("{verb}{s}{id}").as_bytes()), Ok(expected));
            }

            #[test]
            fn listgroup_round_trips(
                name in group_name(),
                low in number(),
                high in proptest::option::of(number()),
            ) {
                let text = match high {
                    Some(h) => format!("LISTGROUP {name} {low}-{h}"),
                    None => format!("LISTGROUP {name} {low}-"),
                };
                let expected = Command::ListGroup {
                    group: Some(GroupName::try_from(name.as_str()).unwrap()),
                    range: Some(Range { low, high }),
                };
                prop_assert_eq!(parse_command(text.as_bytes()), Ok(expected));
            }

            #[test]
            fn newgroups_round_trips(
                secs in 0i64..4_102_444_800, // 1970 .. 2100
                gmt in any::<bool>(),
            ) {
                let since = DateTime::from_timestamp(secs, 0).unwrap();
                let text = format!(
                    "NEWGROUPS {}{}",
                    since.format("%Y%m%d %H%M%S"),
                    if gmt { " GMT" } else { "" }
                );
                prop_assert_eq!(parse_command(text.as_bytes()), Ok(Command::NewGroups { since }));
            }
        }
    }
}
