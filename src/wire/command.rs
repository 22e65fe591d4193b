//! The commands a client can send, one variant per RFC command
//! (RFC 3977 §5–§8, RFC 4644, RFC 2980 for XOVER/XHDR/XPAT, RFC 6048 for LIST
//! keywords). Produced by `wire::parse`; consumed by `session`.

use chrono::{DateTime, Utc};

use super::types::{ArticleNumber, GroupName, MessageId, Range};
use super::wildmat::Wildmat;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// CAPABILITIES [keyword] (RFC 3977 §5.2)
    Capabilities,
    /// MODE READER (RFC 3977 §5.3)
    ModeReader,
    /// MODE STREAM (RFC 4644 §2.3)
    ModeStream,
    /// QUIT (RFC 3977 §5.4)
    Quit,
    /// HELP (RFC 3977 §7.2)
    Help,
    /// DATE (RFC 3977 §7.1)
    Date,
    /// GROUP group (RFC 3977 §6.1.1)
    Group(GroupName),
    /// LISTGROUP [group [range]] (RFC 3977 §6.1.2)
    ListGroup {
        group: Option<GroupName>,
        range: Option<Range>,
    },
    /// LAST (RFC 3977 §6.1.3)
    Last,
    /// NEXT (RFC 3977 §6.1.4)
    Next,
    /// ARTICLE / HEAD / BODY / STAT (RFC 3977 §6.2)
    Article(Part, ArticleRef),
    /// POST (RFC 3977 §6.3.1)
    Post,
    /// IHAVE message-id (RFC 3977 §6.3.2)
    Ihave(MessageId),
    /// CHECK message-id (RFC 4644 §2.4)
    Check(MessageId),
    /// TAKETHIS message-id (RFC 4644 §2.5); the article follows.
    TakeThis(MessageId),
    /// NEWGROUPS date time [GMT] (RFC 3977 §7.3)
    NewGroups { since: DateTime<Utc> },
    /// NEWNEWS wildmat date time [GMT] (RFC 3977 §7.4)
    NewNews {
        wildmat: Wildmat,
        since: DateTime<Utc>,
    },
    /// LIST [keyword [argument]] (RFC 3977 §7.6, RFC 6048)
    List(ListKind),
    /// OVER [range|message-id] (RFC 3977 §8.3), XOVER [range] (RFC 2980 §2.8).
    /// `legacy` is true for XOVER (answers 224 like OVER; kept for clarity in logs).
    Over { selection: Selection, legacy: bool },
    /// HDR field [range|message-id] (RFC 3977 §8.5), XHDR (RFC 2980 §2.6; answers 221).
    Hdr {
        field: String,
        selection: Selection,
        legacy: bool,
    },
    /// XGTITLE [wildmat] (RFC 2980 §2.7): group descriptions, of the
    /// groups the wildmat matches or else of the selected group.
    XGTitle(Option<Wildmat>),
    /// XPAT field range|message-id pat [pat...] (RFC 2980 §2.9)
    XPat {
        field: String,
        selection: Selection,
        patterns: Vec<String>,
    },
    /// AUTHINFO USER name (RFC 4643 §2.3)
    AuthinfoUser(String),
    /// AUTHINFO PASS password (RFC 4643 §2.3)
    AuthinfoPass(String),
    /// AUTHINFO SASL mechanism [initial-response] (RFC 4643 §2.4)
    AuthinfoSasl {
        mechanism: String,
        initial: Option<String>,
    },
    /// STARTTLS (RFC 4642)
    StartTls,
    /// COMPRESS algorithm (RFC 8054): the name as given, checked against
    /// the grammar's alg-char but not against what we support.
    Compress(String),
}

/// Which part of an article ARTICLE / HEAD / BODY / STAT asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Article,
    Head,
    Body,
    Stat,
}

/// How ARTICLE-family commands name an article (RFC 3977 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArticleRef {
    /// No argument: the current article.
    Current,
    Number(ArticleNumber),
    MessageId(MessageId),
}

/// How OVER / HDR / XPAT name articles (RFC 3977 §8.3, §8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// No argument: the current article.
    Current,
    Range(Range),
    MessageId(MessageId),
}

/// LIST keywords (RFC 3977 §7.6, RFC 6048). A keyword we do not know is a
/// parse error (501), not a variant.
#[derive(Debug, Clone, PartialEq)]
pub enum ListKind {
    /// LIST, LIST ACTIVE [wildmat]
    Active(Option<Wildmat>),
    /// LIST ACTIVE.TIMES [wildmat]
    ActiveTimes(Option<Wildmat>),
    /// LIST NEWSGROUPS [wildmat]
    Newsgroups(Option<Wildmat>),
    /// LIST COUNTS [wildmat] (RFC 6048 §2.2)
    Counts(Option<Wildmat>),
    /// LIST OVERVIEW.FMT
    OverviewFmt,
    /// LIST HEADERS [MSGID|RANGE]
    Headers(Option<HeadersArg>),
    /// LIST DISTRIB.PATS
    DistribPats,
    /// LIST DISTRIBUTIONS (RFC 6048 §2.3)
    Distributions,
    /// LIST MODERATORS (RFC 6048 §2.4)
    Moderators,
    /// LIST MOTD (RFC 6048 §2.5)
    Motd,
    /// LIST SUBSCRIPTIONS [wildmat] (RFC 6048 §2.6)
    Subscriptions(Option<Wildmat>),
}

/// The argument of LIST HEADERS (RFC 3977 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersArg {
    MsgId,
    Range,
}
