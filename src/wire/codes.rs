//! Every response code tidings sends, named, with the RFC section that
//! defines it. Codes appear nowhere else in the crate as bare numbers.

// Informative and success (RFC 3977 §3.2, §5, §6, §7, §8)
pub const HELP_FOLLOWS: u16 = 100; // §7.2
pub const CAPABILITIES_FOLLOW: u16 = 101; // §5.2
pub const DATE: u16 = 111; // §7.1
pub const READY_POSTING_ALLOWED: u16 = 200; // §5.1
pub const READY_NO_POSTING: u16 = 201; // §5.1
pub const STREAMING_OK: u16 = 203; // RFC 4644 §2.3
pub const CLOSING: u16 = 205; // §5.4
pub const COMPRESSION_ACTIVE: u16 = 206; // RFC 8054 §2.2
pub const GROUP_SELECTED: u16 = 211; // §6.1.1, §6.1.2
pub const LIST_FOLLOWS: u16 = 215; // §7.6
pub const ARTICLE_FOLLOWS: u16 = 220; // §6.2.1
pub const HEAD_FOLLOWS: u16 = 221; // §6.2.2; also XHDR (RFC 2980 §2.6)
pub const BODY_FOLLOWS: u16 = 222; // §6.2.3
pub const ARTICLE_EXISTS: u16 = 223; // §6.2.4, §6.1.3, §6.1.4
pub const OVERVIEW_FOLLOWS: u16 = 224; // §8.3
pub const HEADERS_FOLLOW: u16 = 225; // §8.5
pub const NEWNEWS_FOLLOWS: u16 = 230; // §7.4
pub const NEWGROUPS_FOLLOW: u16 = 231; // §7.3
pub const TRANSFERRED_OK: u16 = 235; // §6.3.2
pub const CHECK_SEND: u16 = 238; // RFC 4644 §2.4
pub const TAKETHIS_OK: u16 = 239; // RFC 4644 §2.5
pub const POSTED_OK: u16 = 240; // §6.3.1
pub const AUTH_ACCEPTED: u16 = 281; // RFC 4643 §2.5
pub const XPAT_FOLLOWS: u16 = 221; // RFC 2980 §2.9
pub const XGTITLE_FOLLOWS: u16 = 282; // RFC 2980 §2.7

// Continue (RFC 3977 §6.3)
pub const SEND_ARTICLE_TRANSFER: u16 = 335; // §6.3.2
pub const SEND_ARTICLE_POST: u16 = 340; // §6.3.1
pub const PASSWORD_REQUIRED: u16 = 381; // RFC 4643 §2.3
pub const TLS_PROCEED: u16 = 382; // RFC 4642 §2.2
pub const SASL_CONTINUE: u16 = 383; // RFC 4643 §2.4

// Transient errors
pub const SERVICE_DISCONTINUED: u16 = 400; // §3.2.1
pub const INTERNAL_FAULT: u16 = 403; // §3.2.1
pub const NO_SUCH_GROUP: u16 = 411; // §6.1.1
pub const NO_GROUP_SELECTED: u16 = 412; // §6.1.1
pub const NO_CURRENT_ARTICLE: u16 = 420; // §6.2
pub const NO_NEXT_ARTICLE: u16 = 421; // §6.1.4
pub const NO_PREVIOUS_ARTICLE: u16 = 422; // §6.1.3
pub const NO_SUCH_NUMBER: u16 = 423; // §6.2
pub const NO_SUCH_MESSAGE_ID: u16 = 430; // §6.2
pub const CHECK_LATER: u16 = 431; // RFC 4644 §2.4
pub const NOT_WANTED: u16 = 435; // §6.3.2
pub const TRANSFER_LATER: u16 = 436; // §6.3.2
pub const TRANSFER_REJECTED: u16 = 437; // §6.3.2
pub const CHECK_NOT_WANTED: u16 = 438; // RFC 4644 §2.4
pub const TAKETHIS_REJECTED: u16 = 439; // RFC 4644 §2.5
pub const POSTING_NOT_PERMITTED: u16 = 440; // §6.3.1
pub const POSTING_FAILED: u16 = 441; // §6.3.1
pub const AUTH_REQUIRED: u16 = 480; // RFC 4643 §2.2
pub const AUTH_FAILED: u16 = 481; // RFC 4643 §2.3
pub const AUTH_OUT_OF_SEQUENCE: u16 = 482; // RFC 4643 §2.3
pub const ENCRYPTION_REQUIRED: u16 = 483; // RFC 4643 §2.2

// Permanent errors
pub const UNKNOWN_COMMAND: u16 = 500; // §3.2.1
pub const SYNTAX_ERROR: u16 = 501; // §3.2.1
pub const NOT_PERMITTED: u16 = 502; // §3.2.1
pub const FEATURE_NOT_SUPPORTED: u16 = 503; // §3.2.1
