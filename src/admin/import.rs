//! `tidings group import`: newsgroups from the files INN keeps them in, for
//! an operator moving a server over, or starting one from a published
//! list (ftp.isc.org's `active` and `newsgroups` have the same formats).
//!
//! - `active` (INN's active(5)): `name high low flag` a line. The flags y,
//!   n and m are tidings' statuses; the article numbers are not carried
//!   over (articles come by feed, numbered here). x (no articles at all),
//!   j (filed in junk) and =alias have no equivalent and are skipped.
//! - `newsgroups` (INN's newsgroups(5)): the name, white space, and the
//!   description. It names groups a server need not carry: it describes,
//!   it never creates.

use std::collections::HashSet;
use std::path::Path;

use crate::wire::types::GroupName;

/// A group an active file creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveGroup {
    pub name: GroupName,
    /// 'y', 'n' or 'm'.
    pub status: char,
}

/// A line that is not imported, and why (for the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub why: String,
}

/// What a file holds: what is imported and what is not.
#[derive(Debug)]
pub struct Parsed<T> {
    pub entries: Vec<T>,
    pub skipped: Vec<Skipped>,
    /// The names taken so far.
    seen: HashSet<String>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Parsed<T> {
        Parsed {
            entries: Vec::new(),
            skipped: Vec::new(),
            seen: HashSet::new(),
        }
    }
}

impl<T> Parsed<T> {
    /// Takes the entry of line `line` for `name`, unless the file listed
    /// `name` before: the first line of a name counts.
    fn take(&mut self, line: usize, name: &GroupName, entry: T) {
        if self.seen.insert(name.as_str().to_owned()) {
            self.entries.push(entry);
        } else {
            self.skipped.push(Skipped {
                line,
                why: format!("{name}: listed before in this file"),
            });
        }
    }
}

/// Parses an active file. Blank lines are ignored; so are `#` comments,
/// which INN's files lack but hand-made ones may have.
pub fn parse_active(text: &str) -> Parsed<ActiveGroup> {
    let mut parsed = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let skip = |why: String| Skipped { line: i + 1, why };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0].starts_with('#') {
            continue;
        }
        let [name, high, low, flag] = fields[..] else {
            parsed.skipped.push(skip(format!(
                "expected `name high low flag`, found {} field(s)",
                fields.len()
            )));
            continue;
        };
        if high.parse::<u64>().is_err() || low.parse::<u64>().is_err() {
            parsed
                .skipped
                .push(skip(format!("{name}: article numbers are not numbers")));
            continue;
        }
        let name = match GroupName::try_from(name) {
            Ok(n) => n,
            Err(e) => {
                parsed.skipped.push(skip(format!("{name}: {e}")));
                continue;
            }
        };
        let status = match flag {
            "y" | "n" | "m" => flag.chars().next().unwrap_or('y'),
            "x" => {
                parsed.skipped.push(skip(format!(
                    "{name}: flag x (takes no articles at all) has no equivalent here"
                )));
                continue;
            }
            "j" => {
                parsed.skipped.push(skip(format!(
                    "{name}: flag j (filed in junk) has no equivalent here"
                )));
                continue;
            }
            f if f.starts_with('=') => {
                parsed.skipped.push(skip(format!(
                    "{name}: an alias of {} has no equivalent here",
                    &f[1..]
                )));
                continue;
            }
            other => {
                parsed
                    .skipped
                    .push(skip(format!("{name}: unknown flag {other:?}")));
                continue;
            }
        };
        parsed.take(i + 1, &name.clone(), ActiveGroup { name, status });
    }
    parsed
}

/// Parses a newsgroups file into (group, description) pairs. A name with
/// no description, a name no group can have, and a name listed again are
/// skipped.
pub fn parse_newsgroups(text: &str) -> Parsed<(GroupName, String)> {
    let mut parsed = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let skip = |why: String| Skipped { line: i + 1, why };
        let (name, description) = match line.split_once(char::is_whitespace) {
            Some((n, d)) => (n, d.trim()),
            None => (line, ""),
        };
        let name = match GroupName::try_from(name) {
            Ok(n) => n,
            Err(e) => {
                parsed.skipped.push(skip(format!("{name}: {e}")));
                continue;
            }
        };
        if description.is_empty() {
            parsed.skipped.push(skip(format!("{name}: no description")));
            continue;
        }
        parsed.take(i + 1, &name.clone(), (name, description.to_owned()));
    }
    parsed
}

/// Reads a file given on the command line; text that is not UTF-8 (old
/// descriptions in Latin-1) is read with its odd bytes replaced.
pub fn read(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_file_gives_groups_with_their_status() {
        let text = "comp.lang.rust 0000012345 0000000010 y\n\
                    \n\
                    news.announce.newgroups 0000000100 0000000001 m\n\
                    local.archive 3 1 n\n\
                    alt.dead 0 1 x\n\
                    junk 10 1 j\n\
                    alt.old 0 1 =alt.new\n\
                    bad..name 0 1 y\n\
                    comp.lang.rust 1 1 n\n\
                    short.line 1 y\n\
                    odd.flag 1 1 q\n\
                    nan.numbers one 1 y\n";
        let p = parse_active(text);
        let got: Vec<(&str, char)> = p
            .entries
            .iter()
            .map(|g| (g.name.as_str(), g.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("comp.lang.rust", 'y'),
                ("news.announce.newgroups", 'm'),
                ("local.archive", 'n'),
            ]
        );
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(p.skipped[0].why.contains("flag x"), "{:?}", p.skipped[0]);
        assert!(p.skipped[2].why.contains("alias of alt.new"));
        assert!(p.skipped[4].why.contains("listed before"));
        assert!(p.skipped[5].why.contains("found 3 field(s)"));
        assert!(p.skipped[6].why.contains("unknown flag"));
        assert!(p.skipped[7].why.contains("not numbers"));
    }

    #[test]
    fn a_newsgroups_file_gives_descriptions() {
        let text = "comp.lang.rust\tThe Rust programming language.\n\
                    news.announce.newgroups\t\tCalls for newgroups. (Moderated)\n\
                    alt.spaces    Separated by spaces.   \n\
                    alt.nothing\n\
                    # a comment\n\
                    bad*name\tWildcards are not names.\n\
                    alt.spaces\tAgain.\n";
        let p = parse_newsgroups(text);
        let got: Vec<(&str, &str)> = p
            .entries
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("comp.lang.rust", "The Rust programming language."),
                (
                    "news.announce.newgroups",
                    "Calls for newgroups. (Moderated)"
                ),
                ("alt.spaces", "Separated by spaces."),
            ]
        );
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![4, 6, 7]);
    }
}
