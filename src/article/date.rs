//! Dates in Date and Injection-Date (RFC 5536 §3.1.1 refers to RFC 5322
//! §3.3), including the obsolete forms of RFC 5322 §4.3 that old software
//! still sends: two-digit years, alphabetic zones, comments anywhere.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use nom::{
    IResult,
    branch::alt,
    bytes::complete::{tag, tag_no_case, take_while_m_n, take_while1},
    character::complete::one_of,
    combinator::{eof, map, opt, value},
    sequence::{pair, preceded, terminated, tuple},
};

/// `CFWS = (1*([FWS] comment) [FWS]) / FWS` (RFC 5322 §3.2.2), made optional.
/// The value is already unfolded, so FWS is just SP/HTAB. Comments nest and
/// may hold quoted-pairs; `Tue, 1 Dec 2026 10:00:00 +0000 (UTC)` is common.
fn cfws(input: &[u8]) -> IResult<&[u8], ()> {
    let mut rest = input;
    loop {
        match rest.first() {
            Some(b' ' | b'\t') => rest = rest.get(1..).unwrap_or_default(),
            Some(b'(') => {
                let mut depth = 0usize;
                let mut i = 0;
                loop {
                    match rest.get(i) {
                        None => {
                            return Err(nom::Err::Error(nom::error::Error::new(
                                rest,
                                nom::error::ErrorKind::Char,
                            )));
                        }
                        Some(b'\\') => i += 2,
                        Some(b'(') => {
                            depth += 1;
                            i += 1;
                        }
                        Some(b')') => {
                            depth -= 1;
                            i += 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(_) => i += 1,
                    }
                }
                rest = rest.get(i..).unwrap_or_default();
            }
            _ => return Ok((rest, ())),
        }
    }
}

fn digits(min: usize, max: usize) -> impl Fn(&[u8]) -> IResult<&[u8], u32> {
    move |input| {
        let (rest, d) = take_while_m_n(min, max, |c: u8| c.is_ascii_digit())(input)?;
        // At most a handful of ASCII digits: cannot overflow u32 for max <= 9.
        let n = d.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
        Ok((rest, n))
    }
}

/// `day-name = "Mon" / "Tue" / "Wed" / "Thu" / "Fri" / "Sat" / "Sun"`
/// (case-insensitive, as all ABNF strings are). Whether it matches the date
/// is not checked: RFC 5322 only says it SHOULD.
fn day_name(input: &[u8]) -> IResult<&[u8], ()> {
    value(
        (),
        alt((
            tag_no_case("Mon"),
            tag_no_case("Tue"),
            tag_no_case("Wed"),
            tag_no_case("Thu"),
            tag_no_case("Fri"),
            tag_no_case("Sat"),
            tag_no_case("Sun"),
        )),
    )(input)
}

/// `month = "Jan" / "Feb" / ... / "Dec"`
fn month(input: &[u8]) -> IResult<&[u8], u32> {
    alt((
        value(1, tag_no_case("Jan")),
        value(2, tag_no_case("Feb")),
        value(3, tag_no_case("Mar")),
        value(4, tag_no_case("Apr")),
        value(5, tag_no_case("May")),
        value(6, tag_no_case("Jun")),
        value(7, tag_no_case("Jul")),
        value(8, tag_no_case("Aug")),
        value(9, tag_no_case("Sep")),
        value(10, tag_no_case("Oct")),
        value(11, tag_no_case("Nov")),
        value(12, tag_no_case("Dec")),
    ))(input)
}

/// `year = (FWS 4*DIGIT FWS) / obs-year`, `obs-year = [CFWS] 2*DIGIT [CFWS]`.
/// RFC 5322 §4.3: a two-digit year below 50 is 20xx, otherwise 19xx; a
/// three-digit year has 1900 added.
fn year(input: &[u8]) -> IResult<&[u8], i32> {
    let (rest, d) = take_while_m_n(2, 4, |c: u8| c.is_ascii_digit())(input)?;
    let y = d.iter().fold(0i32, |n, &c| n * 10 + i32::from(c - b'0'));
    let y = match d.len() {
        2 if y < 50 => 2000 + y,
        2 | 3 => 1900 + y,
        _ => y,
    };
    Ok((rest, y))
}

/// ```text
/// zone     = (FWS ( "+" / "-" ) 4DIGIT) / obs-zone
/// obs-zone = "UT" / "GMT" / "EST" / "EDT" / "CST" / "CDT" / "MST" / "MDT"
///          / "PST" / "PDT" / %d65-73 / %d75-90 / %d97-105 / %d107-122
/// ```
/// Returns the offset east of UTC in seconds. RFC 5322 §4.3: the military
/// single letters were defined with the wrong sign in RFC 822, so they all
/// mean -0000 (unknown local time), which we treat as UTC.
fn zone<'a>(input: &'a [u8]) -> IResult<&'a [u8], i32> {
    let numeric = map(
        pair(one_of("+-"), pair(digits(2, 2), digits(2, 2))),
        |(sign, (h, m))| {
            let s = (h * 3600 + m * 60) as i32;
            if sign == '-' { -s } else { s }
        },
    );
    let named = |input: &'a [u8]| -> IResult<&'a [u8], i32> {
        let (rest, name) = take_while1(|c: u8| c.is_ascii_alphabetic())(input)?;
        let hours = match name.to_ascii_uppercase().as_slice() {
            b"UT" | b"GMT" => 0,
            b"EDT" => -4,
            b"EST" | b"CDT" => -5,
            b"CST" | b"MDT" => -6,
            b"MST" | b"PDT" => -7,
            b"PST" => -8,
            [c] if *c != b'J' => 0,
            _ => {
                return Err(nom::Err::Error(nom::error::Error::new(
                    input,
                    nom::error::ErrorKind::Tag,
                )));
            }
        };
        Ok((rest, hours * 3600))
    };
    alt((numeric, named))(input)
}

/// A Date or Injection-Date value, unfolded (RFC 5322 §3.3):
///
/// ```text
/// date-time   = [ day-of-week "," ] date time [CFWS]
/// date        = day month year
/// time        = time-of-day zone
/// time-of-day = hour ":" minute [ ":" second ]
/// ```
///
/// with CFWS allowed between all tokens (the obs- forms of §4.3). A leap
/// second (`:60`) is read as `:59`. `None` when it does not parse or names
/// an impossible date.
pub fn parse_date(v: &[u8]) -> Option<DateTime<Utc>> {
    let sep = |t: &'static str| tuple((cfws, tag(t), cfws));
    let parsed: IResult<&[u8], _> = tuple((
        cfws,
        opt(terminated(day_name, sep(","))),
        terminated(digits(1, 2), cfws),
        terminated(month, cfws),
        terminated(year, cfws),
        digits(1, 2),
        preceded(sep(":"), digits(2, 2)),
        opt(preceded(sep(":"), digits(2, 2))),
        preceded(cfws, zone),
        terminated(cfws, eof),
    ))(v);
    let (_, (_, _, day, month, year, hour, minute, second, offset, _)) = parsed.ok()?;
    // RFC 5322 §3.3: "the year ... MUST be 1900 or later".
    if year < 1900 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let time = date.and_hms_opt(hour, minute, second.unwrap_or(0).min(59))?;
    let zone = FixedOffset::east_opt(offset)?;
    let local = zone.from_local_datetime(&time).single()?;
    Some(local.with_timezone(&Utc))
}

/// A date in the form RFC 5322 §3.3 recommends, always in UTC:
/// `Tue, 24 Nov 2026 10:00:00 +0000`.
pub fn format_date(t: &DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn rfc5322_examples_parse() {
        // RFC 5322 Appendix A.1.1 and A.1.2.
        assert_eq!(
            parse_date(b"Fri, 21 Nov 1997 09:55:06 -0600"),
            Some(utc(1997, 11, 21, 15, 55, 6))
        );
        assert_eq!(
            parse_date(b"Tue, 1 Jul 2003 10:52:37 +0200"),
            Some(utc(2003, 7, 1, 8, 52, 37))
        );
        // Appendix A.5: comments and whitespace everywhere.
        assert_eq!(
            parse_date(b"Thu,\t13\t  Feb\t  1969\t23:32\t  -0330 (Newfoundland Time)"),
            Some(utc(1969, 2, 14, 3, 2, 0))
        );
        // Appendix A.6.2: obsolete two-digit year and spacing.
        assert_eq!(
            parse_date(b"21 Nov 97 09:55:06 GMT"),
            Some(utc(1997, 11, 21, 9, 55, 6))
        );
    }

    #[test]
    fn obsolete_forms_are_accepted() {
        assert_eq!(
            parse_date(b"24 Nov 26 10:00 UT"),
            Some(utc(2026, 11, 24, 10, 0, 0))
        );
        assert_eq!(
            parse_date(b"Tue, 24 Nov 2026 10:00:00 EST"),
            Some(utc(2026, 11, 24, 15, 0, 0))
        );
        assert_eq!(
            parse_date(b"Tue, 24 Nov 2026 10:00:00 pdt"),
            Some(utc(2026, 11, 24, 17, 0, 0))
        );
        assert_eq!(
            parse_date(b"Tue, 24 Nov 2026 10:00:00 Z"),
            Some(utc(2026, 11, 24, 10, 0, 0))
        );
        assert_eq!(
            parse_date(b"Tue, 24 Nov 126 10:00:00 +0000"),
            Some(utc(2026, 11, 24, 10, 0, 0))
        );
        assert_eq!(
            parse_date(b"tue , 24 nov 2026 10 : 00 : 60 +0000 (leap)"),
            Some(utc(2026, 11, 24, 10, 0, 59))
        );
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            &b""[..],
            b"yesterday",
            b"Tue, 24 Nov 2026 10:00:00",
            b"Tue, 24 Nov 2026 10:00:00 +000",
            b"Tue, 24 Nov 2026 10:00:00 CEST",
            b"Tue, 24 Nov 2026 10:00:00 J",
            b"Tue, 31 Nov 2026 10:00:00 +0000",
            b"Tue, 24 Nov 2026 24:00:00 +0000",
            b"Tue, 24 Nov 2026 10:61:00 +0000",
            b"Tue, 24 Foo 2026 10:00:00 +0000",
            b"Tue, 24 Nov 2026 10:00:00 +0000 trailing",
            b"Tue, 24 Nov 2026 10:00:00 +0000 (unclosed",
            b"Tue 24 Nov 2026 10:00:00 +0000",
        ] {
            assert_eq!(parse_date(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn format_round_trips() {
        let t = utc(2026, 11, 4, 9, 5, 7);
        assert_eq!(format_date(&t), "Wed, 04 Nov 2026 09:05:07 +0000");
        assert_eq!(parse_date(format_date(&t).as_bytes()), Some(t));
    }
}
