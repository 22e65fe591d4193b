"""Articles in the shapes real posting software produces, posted and read
back with nntplib: folded headers, "a, b" Newsgroups, empty bodies, old
Date lines, client-supplied trace headers, 8-bit headers, big articles,
and two-digit-year NEWNEWS/NEWGROUPS (RFC 3977 7.3-7.4, 8.3; RFC 5536,
5537)."""

import datetime

import nntplib
from nntptest import check, connect, done, expect_error

UTC_NOW = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)

s = connect()


def post(head, body=b"body\r\n"):
    resp = s.post(head + b"\r\n" + body)
    check(resp.startswith("240"), f"POST should answer 240, got {resp!r} for {head!r}")
    return resp


def over_by_id(mid):
    resp, entries = s.over(mid)
    check(len(entries) == 1, f"OVER {mid} gave {entries!r}")
    return entries[0][1]


def header(mid, name):
    """Every value of header `name` in HEAD <mid> (folded lines kept)."""
    _, info = s.head(mid)
    prefix = name.lower().encode() + b":"
    return [line for line in info.lines if line.lower().startswith(prefix)]


# A folded Subject with a TAB: OVER removes the CRLF and turns TABs into
# spaces (RFC 3977 8.3.2); ARTICLE keeps the folding as posted.
post(
    b"From: a@example.com\r\nNewsgroups: local.test\r\n"
    b"Subject: folded\r\n\tcontinued\there\r\nMessage-ID: <fold@forms.example>\r\n"
)
f = over_by_id("<fold@forms.example>")
check(f["subject"] == "folded continued here", f"folded Subject in OVER: {f['subject']!r}")
_, info = s.head("<fold@forms.example>")
i = info.lines.index(b"Subject: folded")
check(info.lines[i + 1] == b"\tcontinued\there", f"folding not kept in HEAD: {info.lines!r}")

# Newsgroups with folding white space after the comma (RFC 5536 3.1.4
# allows it; many clients write "a, b").
post(
    b"From: a@example.com\r\nNewsgroups: local.test, local.general\r\n"
    b"Subject: spaced\r\nMessage-ID: <spaced@forms.example>\r\n"
)
f = over_by_id("<spaced@forms.example>")
xref = f.get("xref") or ""
check("local.test:" in xref and "local.general:" in xref, f"'a, b' crosspost Xref: {f!r}")
resp, count, first, last, name = s.group("local.general")
check(count == 1, f"'a, b' crosspost did not reach local.general: {resp!r}")

# An article with an empty body.
post(b"From: a@example.com\r\nNewsgroups: local.test\r\nSubject: empty\r\nMessage-ID: <empty@forms.example>\r\n", b"")
f = over_by_id("<empty@forms.example>")
check(f[":lines"] == "0", f"empty body :lines {f[':lines']!r}")
_, info = s.body("<empty@forms.example>")
check(info.lines == [], f"empty body came back as {info.lines!r}")

# An old Date line: NEWNEWS goes by arrival, not by Date (RFC 3977 7.4).
post(
    b"From: a@example.com\r\nNewsgroups: local.test\r\nSubject: old\r\n"
    b"Date: Mon, 01 Jan 2001 00:00:00 +0000\r\nMessage-ID: <old@forms.example>\r\n"
)
resp, found = s.newnews("local.test", UTC_NOW - datetime.timedelta(hours=1))
check("<old@forms.example>" in found, f"NEWNEWS lacks the article with an old Date: {found!r}")
f = over_by_id("<old@forms.example>")
check(f["date"] == "Mon, 01 Jan 2001 00:00:00 +0000", f"poster's Date changed: {f['date']!r}")

# Trace headers supplied by the client are not trusted: the server writes
# its own Xref, and Path starts with the server's identity (RFC 5537 3.5).
post(
    b"From: a@example.com\r\nNewsgroups: local.test\r\nSubject: forged\r\n"
    b"Path: not-for-mail\r\nXref: evil.example local.general:99\r\n"
    b"Message-ID: <forged@forms.example>\r\n"
)
xrefs = header("<forged@forms.example>", "Xref")
check(
    len(xrefs) == 1 and b"evil.example" not in xrefs[0] and b"local.test:" in xrefs[0],
    f"client Xref survived: {xrefs!r}",
)
paths = header("<forged@forms.example>", "Path")
check(
    len(paths) == 1 and paths[0].startswith(b"Path: tidings.local!"),
    f"Path should start with the server's identity: {paths!r}",
)

# Raw UTF-8 in headers (common in practice): once accepted, it is served
# back byte for byte, in HEAD and in OVER.
post(
    "From: Jürgen <j@example.com>\r\nNewsgroups: local.test\r\nSubject: Grüße ✓\r\n"
    "Message-ID: <raw8@forms.example>\r\n".encode()
)
f = over_by_id("<raw8@forms.example>")
check(f["subject"] == "Grüße ✓" and f["from"] == "Jürgen <j@example.com>", f"8-bit OVER: {f!r}")
check(header("<raw8@forms.example>", "Subject") == ["Subject: Grüße ✓".encode()], "8-bit HEAD")

# Message-ids compare as octets (RFC 3977 3.6): other case, other article.
expect_error(
    "STAT with the message-id in upper case",
    lambda: s.stat("<FOLD@FORMS.EXAMPLE>"),
    nntplib.NNTPTemporaryError,
    "430",
)

# A large article (~900 KB, under the 1 MiB default limit) round-trips.
line = b"x" * 900
big = (line + b"\r\n") * 1000
post(b"From: a@example.com\r\nNewsgroups: local.test\r\nSubject: big\r\nMessage-ID: <big@forms.example>\r\n", big)
_, info = s.body("<big@forms.example>")
check(len(info.lines) == 1000 and all(x == line for x in info.lines), "big body differs")
f = over_by_id("<big@forms.example>")
check(f[":lines"] == "1000", f"big :lines {f[':lines']!r}")

# A too-large article is refused with 441 and the session stays in step.
expect_error(
    "POST of a 1.8 MB article",
    lambda: s.post(
        b"From: a@example.com\r\nNewsgroups: local.test\r\nSubject: huge\r\n"
        b"Message-ID: <huge@forms.example>\r\n\r\n" + big * 2
    ),
    nntplib.NNTPTemporaryError,
    "441",
)
resp, when = s.date()
check(resp.startswith("111"), f"DATE after the refused article: {resp!r}")
expect_error("STAT of the refused article", lambda: s.stat("<huge@forms.example>"), nntplib.NNTPTemporaryError, "430")

# Two-digit years, as nntplib sends them to a server it takes for NNTPv1
# (RFC 3977 7.3.2: a year no later than this one is in this century).
s.nntp_version = 1
resp, found = s.newnews("local.test", UTC_NOW - datetime.timedelta(hours=1))
check(
    "<fold@forms.example>" in found and "<big@forms.example>" in found,
    f"NEWNEWS with a two-digit year: {resp!r} {found!r}",
)
# Every group the default configuration creates.
STARTERS = ["control", "control.cancel", "local.announce", "local.general", "local.test"]
resp, groups = s.newgroups(UTC_NOW - datetime.timedelta(days=1))
names = sorted(g.group for g in groups)
check(names == STARTERS, f"NEWGROUPS yymmdd: {names!r}")
# "300101" is 1930, not 2030 (a two-digit year above this one is last
# century), so every group is newer than it.
resp, groups = s.newgroups(datetime.date(2030, 1, 1))
names = sorted(g.group for g in groups)
check(names == STARTERS, f"NEWGROUPS 300101: {names!r}")
s.nntp_version = 2

resp, count, first, last, name = s.group("local.test")
check((count, first, last) == (7, 1, 7), f"local.test after seven posts: {resp!r}")
s.quit()
done("post_forms")
