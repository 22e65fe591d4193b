//! Reading commands (RFC 3977 §6.1, §6.2, §7.3, §7.4, §8.3, §8.5; RFC 2980
//! XHDR/XPAT): group and article selection, article retrieval, overview.

use chrono::{DateTime, Utc};

use super::{Selected, Session};
use crate::article;
use crate::store::StoreError;
use crate::wire::codes;
use crate::wire::command::{ArticleRef, Part, Selection};
use crate::wire::response::Response;
use crate::wire::types::{GroupName, MessageId, Range};
use crate::wire::wildmat::Wildmat;

type Result<T> = std::result::Result<T, StoreError>;

fn no_group() -> Response {
    Response::new(codes::NO_GROUP_SELECTED, "No newsgroup selected")
}

fn no_current() -> Response {
    Response::new(
        codes::NO_CURRENT_ARTICLE,
        "Current article number is invalid",
    )
}

fn no_such_group() -> Response {
    Response::new(codes::NO_SUCH_GROUP, "No such newsgroup")
}

fn no_such_msgid() -> Response {
    Response::new(codes::NO_SUCH_MESSAGE_ID, "No article with that message-id")
}

fn no_such_number() -> Response {
    Response::new(codes::NO_SUCH_NUMBER, "No article with that number")
}

fn empty_range() -> Response {
    Response::new(codes::NO_SUCH_NUMBER, "No articles in that range")
}

/// Where an overview field sits in our stored overview line (LIST
/// OVERVIEW.FMT order, without the leading number).
fn overview_index(field: &str) -> Option<usize> {
    Some(match field.to_ascii_lowercase().as_str() {
        "subject" => 0,
        "from" => 1,
        "date" => 2,
        "message-id" => 3,
        "references" => 4,
        ":bytes" => 5,
        ":lines" => 6,
        "xref" => 7,
        _ => return None,
    })
}

fn overview_field(line: &str, index: usize) -> &str {
    let value = line.split('\t').nth(index).unwrap_or("");
    if index == 7 {
        value.strip_prefix("Xref: ").unwrap_or(value)
    } else {
        value
    }
}

/// A header's value taken from a stored article, metadata included.
fn article_field(bytes: &[u8], field: &str) -> Option<String> {
    match field.to_ascii_lowercase().as_str() {
        ":bytes" => Some(bytes.len().to_string()),
        ":lines" => {
            let (_, body) = article::split(bytes);
            Some(count_lines(body).to_string())
        }
        _ => article::header_value(bytes, field),
    }
}

fn count_lines(body: &[u8]) -> usize {
    let n = memchr::memchr_iter(b'\n', body).count();
    if body.last().is_some_and(|&b| b != b'\n') {
        n + 1
    } else {
        n
    }
}

/// The first `group:number` of an article's Xref header.
fn first_xref(bytes: &[u8]) -> Option<(String, u64)> {
    article::xref_entries(bytes).into_iter().next()
}

impl Session {
    fn select(&mut self, g: &crate::store::GroupInfo) {
        self.group = Some(Selected::from_info(g));
        self.current = (g.count > 0).then_some(g.low);
    }

    /// GROUP (RFC 3977 §6.1.1).
    pub(super) async fn group(&mut self, name: &GroupName) -> Result<Response> {
        let Some(g) = self.store().group(name.as_str()).await? else {
            return Ok(no_such_group());
        };
        if !self.may_read(&g.name) {
            return Ok(no_such_group());
        }
        self.select(&g);
        Ok(Response::new(
            codes::GROUP_SELECTED,
            format!("{} {} {} {}", g.count, g.low, g.high, g.name),
        ))
    }

    /// LISTGROUP (RFC 3977 §6.1.2).
    pub(super) async fn list_group(
        &mut self,
        group: Option<GroupName>,
        range: Option<Range>,
    ) -> Result<Response> {
        let name = match (&group, &self.group) {
            (Some(name), _) => name.as_str().to_owned(),
            (None, Some(selected)) => selected.name.clone(),
            (None, None) => return Ok(no_group()),
        };
        let Some(g) = self.store().group(&name).await? else {
            return Ok(no_such_group());
        };
        if !self.may_read(&g.name) {
            return Ok(no_such_group());
        }
        self.select(&g);
        let range = range.unwrap_or(Range {
            low: g.low.max(1),
            high: None,
        });
        let body = if range.is_empty() {
            Vec::new()
        } else {
            self.store().list_numbers(g.id, range).await?
        };
        Ok(Response::with_body(
            codes::GROUP_SELECTED,
            format!("{} {} {} {} list follows", g.count, g.low, g.high, g.name),
            body,
        ))
    }

    /// LAST and NEXT (RFC 3977 §6.1.3, §6.1.4).
    pub(super) async fn step(&mut self, forward: bool) -> Result<Response> {
        let Some(g) = &self.group else {
            return Ok(no_group());
        };
        let Some(current) = self.current else {
            return Ok(no_current());
        };
        match self.store().neighbour(g.id, current, forward).await? {
            Some((n, msgid)) => {
                self.current = Some(n);
                Ok(Response::new(
                    codes::ARTICLE_EXISTS,
                    format!("{n} {msgid} Article found"),
                ))
            }
            None if forward => Ok(Response::new(
                codes::NO_NEXT_ARTICLE,
                "No next article in this group",
            )),
            None => Ok(Response::new(
                codes::NO_PREVIOUS_ARTICLE,
                "No previous article in this group",
            )),
        }
    }

    /// ARTICLE, HEAD, BODY, STAT (RFC 3977 §6.2).
    pub(super) async fn article(&mut self, part: Part, r: ArticleRef) -> Result<Response> {
        let (number, msgid, bytes) = match r {
            ArticleRef::MessageId(id) => {
                // By message-id: the number reported is 0 and the current
                // article does not change (RFC 3977 §6.2.1.2).
                if part == Part::Stat && self.reads_everything() {
                    if !self.store().has_article(&id).await? {
                        return Ok(no_such_msgid());
                    }
                    (0, id.to_string(), Vec::new())
                } else {
                    // An article in no group this client may read does not
                    // exist for it.
                    match self.store().article_by_msgid(&id).await? {
                        Some(a) if self.may_read_article(&a.bytes) => (0, a.msgid, a.bytes),
                        _ => return Ok(no_such_msgid()),
                    }
                }
            }
            ArticleRef::Number(n) => {
                let Some(g) = &self.group else {
                    return Ok(no_group());
                };
                let found = self.fetch(g.id, n, part).await?;
                let Some((msgid, bytes)) = found else {
                    return Ok(no_such_number());
                };
                self.current = Some(n);
                (n, msgid, bytes)
            }
            ArticleRef::Current => {
                let Some(g) = &self.group else {
                    return Ok(no_group());
                };
                let Some(n) = self.current else {
                    return Ok(no_current());
                };
                match self.fetch(g.id, n, part).await? {
                    Some((msgid, bytes)) => (n, msgid, bytes),
                    None => return Ok(no_current()),
                }
            }
        };
        let text = format!("{number} {msgid}");
        if matches!(part, Part::Article | Part::Body) {
            let limit = self.rule.download_bytes_per_day;
            if !self
                .shared
                .usage
                .download(&self.usage_key(), bytes.len() as u64, limit)
            {
                return Ok(Response::new(
                    codes::NOT_PERMITTED,
                    "Download volume limit reached for today",
                ));
            }
        }
        Ok(match part {
            Part::Article => Response::with_body(codes::ARTICLE_FOLLOWS, text, bytes),
            Part::Head => {
                let (head, _) = article::split(&bytes);
                Response::with_body(codes::HEAD_FOLLOWS, text, head.to_vec())
            }
            Part::Body => {
                let (_, body) = article::split(&bytes);
                Response::with_body(codes::BODY_FOLLOWS, text, body.to_vec())
            }
            Part::Stat => Response::new(codes::ARTICLE_EXISTS, text),
        })
    }

    async fn fetch(&self, group_id: i64, n: u64, part: Part) -> Result<Option<(String, Vec<u8>)>> {
        if part == Part::Stat {
            Ok(self
                .store()
                .msgid_by_number(group_id, n)
                .await?
                .map(|m| (m, Vec::new())))
        } else {
            Ok(self
                .store()
                .article_by_number(group_id, n)
                .await?
                .map(|a| (a.msgid, a.bytes)))
        }
    }

    /// NEWGROUPS (RFC 3977 §7.3).
    pub(super) async fn new_groups(&mut self, since: DateTime<Utc>) -> Result<Response> {
        let groups = self.store().groups_created_since(since.timestamp()).await?;
        let groups = self.readable(groups);
        let mut body = String::new();
        for g in groups {
            body.push_str(&format!("{} {} {} {}\r\n", g.name, g.high, g.low, g.status));
        }
        Ok(Response::with_body(
            codes::NEWGROUPS_FOLLOW,
            "List of new newsgroups follows",
            body.into_bytes(),
        ))
    }

    /// NEWNEWS (RFC 3977 §7.4).
    pub(super) async fn new_news(
        &mut self,
        wildmat: &Wildmat,
        since: DateTime<Utc>,
    ) -> Result<Response> {
        let ids: Vec<i64> = self
            .store()
            .groups()
            .await?
            .into_iter()
            .filter(|g| wildmat.matches(&g.name) && self.may_read(&g.name))
            .map(|g| g.id)
            .collect();
        let msgids = self.store().new_news(&ids, since.timestamp()).await?;
        let mut body = String::new();
        for id in msgids {
            body.push_str(&id);
            body.push_str("\r\n");
        }
        Ok(Response::with_body(
            codes::NEWNEWS_FOLLOWS,
            "List of new articles follows",
            body.into_bytes(),
        ))
    }

    /// OVER / XOVER (RFC 3977 §8.3).
    pub(super) async fn over(&mut self, selection: Selection) -> Result<Response> {
        let body = match selection {
            Selection::MessageId(id) => {
                let Some(line) = self.overview_by_msgid(&id).await? else {
                    return Ok(no_such_msgid());
                };
                // The number field is 0 for a message-id (RFC 3977 §8.3.2).
                format!("0\t{line}\r\n").into_bytes()
            }
            Selection::Range(range) => {
                let Some(g) = &self.group else {
                    return Ok(no_group());
                };
                let block = if range.is_empty() {
                    Vec::new()
                } else {
                    self.store().overview_block(g.id, range).await?
                };
                if block.is_empty() {
                    return Ok(empty_range());
                }
                block
            }
            Selection::Current => {
                let Some(g) = &self.group else {
                    return Ok(no_group());
                };
                let Some(n) = self.current else {
                    return Ok(no_current());
                };
                let Some(line) = self.store().overview_line(g.id, n).await? else {
                    return Ok(no_current());
                };
                format!("{n}\t{line}\r\n").into_bytes()
            }
        };
        Ok(Response::with_body(
            codes::OVERVIEW_FOLLOWS,
            "Overview information follows",
            body,
        ))
    }

    async fn overview_by_msgid(&self, id: &MessageId) -> Result<Option<String>> {
        let Some(a) = self.store().article_by_msgid(id).await? else {
            return Ok(None);
        };
        if !self.may_read_article(&a.bytes) {
            return Ok(None);
        }
        let Some((group, number)) = first_xref(&a.bytes) else {
            return Ok(None);
        };
        let Some(g) = self.store().group(&group).await? else {
            return Ok(None);
        };
        self.store().overview_line(g.id, number).await
    }

    /// HDR / XHDR (RFC 3977 §8.5, RFC 2980 §2.6), and XPAT (RFC 2980 §2.9)
    /// when `patterns` is given.
    pub(super) async fn hdr(
        &mut self,
        field: &str,
        selection: Selection,
        legacy: bool,
        patterns: Option<&[String]>,
    ) -> Result<Response> {
        let patterns: Option<Vec<Wildmat>> = match patterns {
            None => None,
            Some(ps) => {
                let mut out = Vec::with_capacity(ps.len());
                for p in ps {
                    match Wildmat::parse(p, false) {
                        Ok(w) => out.push(w),
                        Err(e) => return Ok(Response::new(codes::SYNTAX_ERROR, e.to_string())),
                    }
                }
                Some(out)
            }
        };
        let index = overview_index(field);
        let mut rows: Vec<(u64, Option<String>)> = Vec::new();
        match selection {
            Selection::MessageId(id) => {
                let a = match self.store().article_by_msgid(&id).await? {
                    Some(a) if self.may_read_article(&a.bytes) => a,
                    _ => return Ok(no_such_msgid()),
                };
                rows.push((0, article_field(&a.bytes, field)));
            }
            Selection::Current => {
                let Some(g) = &self.group else {
                    return Ok(no_group());
                };
                let Some(n) = self.current else {
                    return Ok(no_current());
                };
                let Some(a) = self.store().article_by_number(g.id, n).await? else {
                    return Ok(no_current());
                };
                rows.push((n, article_field(&a.bytes, field)));
            }
            Selection::Range(range) => {
                let Some(g) = &self.group else {
                    return Ok(no_group());
                };
                let gid = g.id;
                if !range.is_empty() {
                    if let Some(index) = index {
                        for (n, line) in self.store().overview_rows(gid, range).await? {
                            let v = overview_field(&line, index);
                            rows.push((n, (!v.is_empty()).then(|| v.to_owned())));
                        }
                    } else {
                        // Not in the overview: read the articles, a chunk at a time.
                        const CHUNK: i64 = 1000;
                        let mut low = range.low;
                        loop {
                            let part = Range {
                                low,
                                high: range.high,
                            };
                            let chunk = self.store().articles_in_range(gid, part, CHUNK).await?;
                            let last = chunk.last().map(|(n, _)| *n);
                            let full = chunk.len() as i64 == CHUNK;
                            for (n, bytes) in chunk {
                                rows.push((n, article_field(&bytes, field)));
                            }
                            match last {
                                Some(l) if full && l < range.high_or_max() => low = l + 1,
                                _ => break,
                            }
                        }
                    }
                }
                if rows.is_empty() && patterns.is_none() {
                    return Ok(empty_range());
                }
            }
        }
        let mut body = String::new();
        for (n, value) in rows {
            if let Some(ps) = &patterns {
                let v = value.as_deref().unwrap_or("");
                if !ps.iter().any(|p| p.matches(v)) {
                    continue;
                }
            }
            match value {
                Some(v) => body.push_str(&format!("{n} {v}\r\n")),
                // INN's XHDR says "(none)"; RFC 3977 HDR gives empty content.
                None if legacy => body.push_str(&format!("{n} (none)\r\n")),
                None => body.push_str(&format!("{n} \r\n")),
            }
        }
        let (code, text) = if patterns.is_some() {
            (codes::XPAT_FOLLOWS, "Header follows")
        } else if legacy {
            (codes::HEAD_FOLLOWS, "Header follows")
        } else {
            (codes::HEADERS_FOLLOW, "Headers follow")
        };
        Ok(Response::with_body(code, text, body.into_bytes()))
    }
}
