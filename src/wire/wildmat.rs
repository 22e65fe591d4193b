//! Wildmats (RFC 3977 §4), with INN's `@` poison marker (newsfeeds(5)).
//!
//! RFC 3977 §4.1 only has `*` and `?`; like INN's uwildmat we also accept
//! character classes (`[a-z]`, `[^0-9]`) and `\` quoting the next character,
//! because feed and reader configurations written for INN use them.
//!
//! Matching is iterative and backtracks only to the most recent `*`, so a
//! hostile pattern such as `*a*a*a*a*b` costs O(pattern × name), never
//! exponential time (a client chooses the wildmat of NEWNEWS and LIST).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid wildmat: {0}")]
pub struct WildmatError(pub &'static str);

/// A parsed wildmat: a comma-separated list of patterns, each optionally
/// negated with `!` (or poisoned with `@`, INN's extension for feeds).
/// The last pattern that matches decides (RFC 3977 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildmat {
    source: String,
    patterns: Vec<Pattern>,
}

/// What a pattern says about a name it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sense {
    /// Plain pattern: the name is wanted.
    Positive,
    /// `!pattern`: the name is not wanted.
    Negated,
    /// `@pattern` (INN feeds): not wanted, and neither is any article
    /// crossposted to it.
    Poison,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    sense: Sense,
    items: Vec<Item>,
}

/// One `wildmat-item` (RFC 3977 §4.1), plus INN's classes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// `wildmat-exact`, or any character quoted with `\`.
    Exact(char),
    /// `?`: exactly one character (one UTF-8 character, not one octet).
    One,
    /// `*`: any sequence, including the empty one.
    Star,
    /// `[...]` / `[^...]`: inclusive ranges; a single character is `(c, c)`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Item {
    /// Whether this single-character item matches `c` (`Star` never does:
    /// the matcher handles it).
    fn accepts(&self, c: char) -> bool {
        match self {
            Item::Exact(e) => *e == c,
            Item::One => true,
            Item::Star => false,
            Item::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Wildmat {
    /// Parses `wildmat = wildmat-pattern *("," ["!"] wildmat-pattern)`;
    /// `allow_poison` admits INN's `@` prefix (feeds only; never from a client).
    ///
    /// As INN does, the first pattern may also carry `!` (it then simply
    /// matches nothing on its own). When `allow_poison` is false, `@` is an
    /// ordinary character (it is a `wildmat-exact`, %x40).
    pub fn parse(s: &str, allow_poison: bool) -> Result<Wildmat, WildmatError> {
        let mut patterns = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            let sense = match chars.peek() {
                Some('!') => {
                    chars.next();
                    Sense::Negated
                }
                Some('@') if allow_poison => {
                    chars.next();
                    Sense::Poison
                }
                _ => Sense::Positive,
            };
            let mut items = Vec::new();
            let mut more = false;
            while let Some(c) = chars.next() {
                check_char(c)?;
                let item = match c {
                    ',' => {
                        more = true;
                        break;
                    }
                    '*' => Item::Star,
                    '?' => Item::One,
                    '\\' => Item::Exact(escaped(&mut chars)?),
                    '[' => parse_class(&mut chars)?,
                    other => Item::Exact(other),
                };
                items.push(item);
            }
            // Covers "", "a,,b", a leading or trailing comma, and a lone "!".
            if items.is_empty() {
                return Err(WildmatError("empty pattern"));
            }
            patterns.push(Pattern { sense, items });
            if !more {
                break;
            }
        }
        Ok(Wildmat {
            source: s.to_owned(),
            patterns,
        })
    }

    /// True when the last pattern that matches `name` is a positive one.
    pub fn matches(&self, name: &str) -> bool {
        self.decider(name)
            .is_some_and(|sense| sense == Sense::Positive)
    }

    /// True when the last pattern that matches `name` is a `@` poison pattern.
    pub fn poisoned(&self, name: &str) -> bool {
        self.decider(name)
            .is_some_and(|sense| sense == Sense::Poison)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The sense of the last pattern matching `name` (RFC 3977 §4.2).
    fn decider(&self, name: &str) -> Option<Sense> {
        let text: Vec<char> = name.chars().collect();
        self.patterns
            .iter()
            .rev()
            .find(|p| match_items(&p.items, &text))
            .map(|p| p.sense)
    }
}

/// Whitespace and control characters are never part of a wildmat: they
/// cannot appear in a newsgroup name, and on the wire they separate
/// arguments.
fn check_char(c: char) -> Result<(), WildmatError> {
    if c.is_whitespace() || c.is_control() {
        Err(WildmatError("contains whitespace or a control character"))
    } else {
        Ok(())
    }
}

/// The character after a `\`, which stands for itself.
fn escaped(chars: &mut impl Iterator<Item = char>) -> Result<char, WildmatError> {
    let c = chars
        .next()
        .ok_or(WildmatError("trailing \\ escapes nothing"))?;
    check_char(c)?;
    Ok(c)
}

/// Parses a class after its `[`: `[^...]` negates; a `]` right after `[` or
/// `[^` is a member, as in INN; `a-z` is a range; `-` first or last is a
/// member; `\` quotes the next character.
fn parse_class(
    chars: &mut std::iter::Peekable<impl Iterator<Item = char>>,
) -> Result<Item, WildmatError> {
    const UNTERMINATED: WildmatError = WildmatError("unterminated [ class");
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges: Vec<(char, char)> = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or(UNTERMINATED)?;
        check_char(c)?;
        let lo = match c {
            ']' if !first => break,
            '\\' => escaped(chars).map_err(|_| UNTERMINATED)?,
            other => other,
        };
        first = false;
        if chars.peek() == Some(&'-') {
            chars.next();
            match chars.peek() {
                // `a-]`: the `-` is a member, and `]` closes the class.
                Some(']') => {
                    ranges.push((lo, lo));
                    ranges.push(('-', '-'));
                }
                Some(_) => {
                    let c = chars.next().ok_or(UNTERMINATED)?;
                    check_char(c)?;
                    let hi = if c == '\\' {
                        escaped(chars).map_err(|_| UNTERMINATED)?
                    } else {
                        c
                    };
                    ranges.push((lo, hi));
                }
                None => return Err(UNTERMINATED),
            }
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Item::Class { negated, ranges })
}

/// Whole-string match of `items` against `text`: the classic greedy-star
/// algorithm. On a mismatch we return to the last `*` and let it swallow one
/// more character; earlier stars never need revisiting, because the last
/// star can absorb anything they could have.
fn match_items(items: &[Item], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // (index of the last star, text position it is currently matched up to)
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (items.get(p), text.get(t)) {
            (Some(Item::Star), _) => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            (Some(item), Some(&c)) if item.accepts(c) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    items.iter().skip(p).all(|item| *item == Item::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(s: &str) -> Wildmat {
        Wildmat::parse(s, false).unwrap()
    }

    #[test]
    fn rfc3977_4_4_examples() {
        // RFC 3977 §4.4: "a*,!*b,*c*"
        let w = wm("a*,!*b,*c*");
        assert!(w.matches("aaa"));
        assert!(!w.matches("abb"));
        assert!(w.matches("ccb"));
        assert!(!w.matches("xxx"));
        // "a*,*c*,!*b": the negation now comes last and wins on "ccb".
        let w = wm("a*,*c*,!*b");
        assert!(w.matches("aaa"));
        assert!(!w.matches("abb"));
        assert!(!w.matches("ccb"));
        assert!(!w.matches("xxx"));
    }

    #[test]
    fn rfc3977_4_1_single_patterns() {
        // "a*" matches anything beginning with "a"; "?" exactly one character.
        assert!(wm("a*").matches("a"));
        assert!(wm("a*").matches("abc"));
        assert!(!wm("a*").matches("ba"));
        assert!(wm("a?c").matches("abc"));
        assert!(!wm("a?c").matches("ac"));
        assert!(!wm("a?c").matches("abbc"));
        assert!(wm("comp.lang.*").matches("comp.lang.rust"));
        assert!(!wm("comp.lang.*").matches("comp.lan"));
        assert!(wm("*").matches(""));
        assert!(wm("**").matches("x"));
    }

    #[test]
    fn matching_is_whole_string_and_case_sensitive() {
        assert!(!wm("comp").matches("comp.lang"));
        assert!(!wm("lang").matches("comp.lang"));
        assert!(!wm("Comp.*").matches("comp.lang"));
    }

    #[test]
    fn question_mark_is_one_utf8_character() {
        assert!(wm("de.?ber").matches("de.über"));
        assert!(!wm("de.??ber").matches("de.über"));
        assert!(wm("fr.caf?").matches("fr.café"));
    }

    #[test]
    fn negation_alone_matches_nothing() {
        let w = wm("!*b");
        assert!(!w.matches("ab"));
        assert!(!w.matches("aa"));
        assert!(wm("*,!*.binaries.*").matches("comp.lang"));
        assert!(!wm("*,!*.binaries.*").matches("alt.binaries.x"));
        assert!(wm("*,!*.binaries.*,alt.binaries.ok").matches("alt.binaries.ok"));
    }

    #[test]
    fn classes_ranges_and_negated_classes() {
        let w = wm("comp.[a-c]*");
        assert!(w.matches("comp.ai"));
        assert!(w.matches("comp.c"));
        assert!(!w.matches("comp.d"));
        let w = wm("x[^0-9]");
        assert!(w.matches("xa"));
        assert!(!w.matches("x5"));
        assert!(!w.matches("x"));
        assert!(wm("[]]").matches("]"));
        assert!(wm("[^]]").matches("a"));
        assert!(!wm("[^]]").matches("]"));
        assert!(wm("[a-]").matches("-"));
        assert!(wm("[-a]").matches("-"));
        assert!(wm("[,]").matches(","));
        assert!(wm("[ab\\]]").matches("]"));
    }

    #[test]
    fn backslash_quotes_the_next_character() {
        assert!(wm("a\\*").matches("a*"));
        assert!(!wm("a\\*").matches("ab"));
        assert!(wm("a\\?").matches("a?"));
        assert!(!wm("a\\?").matches("ab"));
        assert!(wm("a\\,b").matches("a,b"));
        assert_eq!(wm("a\\,b").patterns.len(), 1);
        assert!(wm("\\!x").matches("!x"));
    }

    #[test]
    fn bad_wildmats_are_refused() {
        for bad in [
            "", ",", "a,", ",a", "a,,b", "!", "a,!", "a[", "a[b", "[]", "[^]", "a\\", "a b",
            "a\tb", "a\u{7}", "[a\\",
        ] {
            assert!(
                Wildmat::parse(bad, false).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn poison_is_a_negation_that_poisons() {
        let w = Wildmat::parse("*,@alt.binaries.*,!alt.binaries.ok", true).unwrap();
        assert!(w.matches("comp.lang"));
        assert!(!w.poisoned("comp.lang"));
        assert!(!w.matches("alt.binaries.x"));
        assert!(w.poisoned("alt.binaries.x"));
        // The later `!` decides: refused, but not poisoned.
        assert!(!w.matches("alt.binaries.ok"));
        assert!(!w.poisoned("alt.binaries.ok"));
    }

    #[test]
    fn at_is_ordinary_without_poison() {
        let w = wm("@foo");
        assert!(w.matches("@foo"));
        assert!(!w.poisoned("@foo"));
        assert!(!w.matches("foo"));
        assert_ne!(wm("@foo"), Wildmat::parse("@foo", true).unwrap());
    }

    #[test]
    fn as_str_gives_back_the_source() {
        assert_eq!(wm("a*,!*b").as_str(), "a*,!*b");
    }

    #[test]
    fn stars_do_not_backtrack_exponentially() {
        let w = wm("*a*a*a*a*a*a*a*a*a*a*b");
        let long = "a".repeat(20_000);
        let start = std::time::Instant::now();
        assert!(!w.matches(&long));
        assert!(w.matches(&format!("{long}b")));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
