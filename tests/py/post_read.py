"""Posting and reading back as a newsreader does: POST, GROUP, OVER/XOVER,
ARTICLE/HEAD/BODY/STAT, NEXT/LAST, HDR/XHDR, NEWNEWS (RFC 3977 sections
6, 7.4, 8; RFC 5536/5537 for the articles)."""

import datetime
import email.utils

import nntplib
from nntptest import check, connect, done, expect_error

UTC_NOW = datetime.datetime.now(datetime.timezone.utc)


def article(headers, body):
    """An article as nntplib.post() takes it: bytes with CRLF lines."""
    lines = [f"{k}: {v}".encode() for k, v in headers] + [b""] + body
    return b"\r\n".join(lines) + b"\r\n"


def split(lines):
    """(head lines, body lines) of an article as nntplib returns it."""
    blank = lines.index(b"")
    return lines[:blank], lines[blank + 1 :]


def header(head, name):
    """The (unfolded) value of header `name` in head lines, or None."""
    value = None
    for line in head:
        if line[:1] in (b" ", b"\t") and value is not None:
            value += line.decode()
        elif value is not None:
            return value
        elif line.lower().startswith(name.lower().encode() + b":"):
            value = line.split(b":", 1)[1].decode().strip()
    return value


s = connect()

# --- three articles -------------------------------------------------------

body1 = [b"Hello, world.", b"This is the first post."]
body2 = [
    b"Cross-posted to two groups.",
    b".a line starting with a dot",
    b"..two dots",
    b".",
    b"",
    b"after an empty line; trailing spaces   ",
    b"\ttab first",
]
body3 = [
    "Grüße aus Köln — naïve café ✓".encode(),
    "日本語のテキスト".encode(),
]
posts = [
    (
        [
            ("From", "Alice <alice@example.com>"),
            ("Newsgroups", "local.test"),
            ("Subject", "First post"),
        ],
        body1,
    ),
    (
        [
            ("From", "Bob <bob@example.com>"),
            ("Newsgroups", "local.test,local.general"),
            ("Subject", "Crosspost with dots"),
            ("Message-ID", "<crosspost.1@example.com>"),
        ],
        body2,
    ),
    (
        [
            ("From", "Carol <carol@example.com>"),
            ("Newsgroups", "local.test"),
            ("Subject", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?="),
            ("Message-ID", "<utf8.1@example.com>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("Content-Transfer-Encoding", "8bit"),
        ],
        body3,
    ),
]
for headers, body in posts:
    resp = s.post(article(headers, body))
    check(resp.startswith("240"), f"POST {headers[2][1]!r} should answer 240, got {resp!r}")

# --- GROUP counts ---------------------------------------------------------

resp, count, first, last, name = s.group("local.general")
check((count, first, last) == (1, 1, 1), f"local.general after one crosspost: {resp!r}")
resp, count, first, last, name = s.group("local.test")
check((count, first, last) == (3, 1, 3), f"local.test after three posts: {resp!r}")

# --- OVER / XOVER ---------------------------------------------------------

resp, over = s.over((first, last))
check(resp.startswith("224"), f"OVER 1-3 should answer 224, got {resp!r}")
check([n for n, _ in over] == [1, 2, 3], f"OVER 1-3 numbers: {[n for n, _ in over]!r}")
subjects = [f["subject"] for _, f in over]
check(
    subjects == ["First post", "Crosspost with dots", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?="],
    f"OVER subjects: {subjects!r}",
)
check(
    nntplib.decode_header(over[2][1]["subject"]) == "Grüße",
    f"encoded-word subject decodes to {nntplib.decode_header(over[2][1]['subject'])!r}",
)
froms = [f["from"] for _, f in over]
check(
    froms
    == ["Alice <alice@example.com>", "Bob <bob@example.com>", "Carol <carol@example.com>"],
    f"OVER from: {froms!r}",
)
ids = [f["message-id"] for _, f in over]
check(ids[1:] == ["<crosspost.1@example.com>", "<utf8.1@example.com>"], f"OVER ids: {ids!r}")
check(
    ids[0].startswith("<") and ids[0].endswith(">") and "@" in ids[0],
    f"server-made message-id looks wrong: {ids[0]!r}",
)
id1, id2, id3 = ids
for (n, f), (_, body) in zip(over, posts):
    check(f[":lines"] == str(len(body)), f"OVER {n} :lines {f[':lines']!r}, body has {len(body)}")
    check(f["references"] == "", f"OVER {n} references should be empty: {f['references']!r}")
    # The server adds Date (RFC 5537 3.5); a reader sorts by it.
    when = email.utils.parsedate_to_datetime(f["date"])
    skew = abs((when - UTC_NOW).total_seconds())
    check(skew < 120, f"OVER {n} date {f['date']!r} is {skew:.0f}s from now")

resp, xover = s.xover(1, 3)
check(resp.startswith("224"), f"XOVER 1-3 should answer 224, got {resp!r}")
check(xover == over, f"XOVER differs from OVER:\n{xover!r}\n{over!r}")

# OVER by message-id (number 0 when given by id, RFC 3977 8.3.2).
resp, one = s.over(id2)
check(len(one) == 1 and one[0][1]["subject"] == "Crosspost with dots", f"OVER {id2}: {one!r}")
check(one[0][0] in (0, 2), f"OVER <id> number should be 0 (or 2): {one[0][0]}")

# OVER with an open range.
resp, tail = s.over((2, None))
check([n for n, _ in tail] == [2, 3], f"OVER 2- numbers: {[n for n, _ in tail]!r}")

# An empty range is 423 (RFC 3977 8.3.2).
expect_error("OVER 100-200", lambda: s.over((100, 200)), nntplib.NNTPTemporaryError, "423")

# --- ARTICLE / HEAD / BODY / STAT ----------------------------------------

for n, mid, (headers, body) in zip([1, 2, 3], ids, posts):
    resp, info = s.article(n)
    check(resp.startswith(f"220 {n} {mid}"), f"ARTICLE {n} status {resp!r}")
    check((info.number, info.message_id) == (n, mid), f"ARTICLE {n} info {info[:2]!r}")
    head, got = split(info.lines)
    check(got == body, f"ARTICLE {n} body differs:\n got  {got!r}\n sent {body!r}")
    for k, v in headers:
        check(header(head, k) == v, f"ARTICLE {n} header {k}: {header(head, k)!r}, sent {v!r}")
    for k in ["Path", "Date", "Message-ID"]:
        check(header(head, k), f"ARTICLE {n} lacks {k}: {head!r}")
    # :bytes counts the whole article, CRLFs included, no dot-stuffing.
    size = sum(len(line) + 2 for line in info.lines)
    check(
        over[n - 1][1][":bytes"] == str(size),
        f"OVER {n} :bytes {over[n - 1][1][':bytes']!r}, ARTICLE {n} is {size} octets",
    )

    resp, hinfo = s.head(n)
    check(resp.startswith(f"221 {n} {mid}"), f"HEAD {n} status {resp!r}")
    check(hinfo.lines == head, f"HEAD {n} differs from ARTICLE's head:\n{hinfo.lines!r}\n{head!r}")

    resp, binfo = s.body(n)
    check(resp.startswith(f"222 {n} {mid}"), f"BODY {n} status {resp!r}")
    check(binfo.lines == body, f"BODY {n} differs:\n got  {binfo.lines!r}\n sent {body!r}")

    resp, num, sid = s.stat(n)
    check(resp.startswith("223"), f"STAT {n} status {resp!r}")
    check((num, sid) == (n, mid), f"STAT {n} gave {(num, sid)!r}")

    # The same by message-id: number 0 (RFC 3977 6.2.1.2).
    resp, info = s.article(mid)
    check(resp.startswith(f"220 0 {mid}"), f"ARTICLE {mid} status {resp!r}")
    check(split(info.lines)[1] == body, f"ARTICLE {mid} body differs: {info.lines!r}")
    resp, hinfo = s.head(mid)
    check(resp.startswith(f"221 0 {mid}") and hinfo.lines == head, f"HEAD {mid}: {resp!r}")
    resp, binfo = s.body(mid)
    check(resp.startswith(f"222 0 {mid}") and binfo.lines == body, f"BODY {mid}: {resp!r}")
    resp, num, sid = s.stat(mid)
    check((num, sid) == (0, mid), f"STAT {mid} gave {resp!r}")

# The crosspost has its own number in local.general.
s.group("local.general")
resp, info = s.body(1)
check(info.message_id == id2 and info.lines == body2, f"local.general 1 is {resp!r}")
s.group("local.test")

# --- NEXT / LAST ----------------------------------------------------------

resp, num, mid = s.stat(1)
check(num == 1, f"STAT 1 sets the current article: {resp!r}")
resp, num, mid = s.next()
check((num, mid) == (2, id2), f"NEXT from 1: {resp!r}")
resp, num, mid = s.next()
check((num, mid) == (3, id3), f"NEXT from 2: {resp!r}")
expect_error("NEXT from the last article", s.next, nntplib.NNTPTemporaryError, "421")
resp, num, mid = s.last()
check((num, mid) == (2, id2), f"LAST from 3: {resp!r}")
resp, num, mid = s.last()
check((num, mid) == (1, id1), f"LAST from 2: {resp!r}")
expect_error("LAST from the first article", s.last, nntplib.NNTPTemporaryError, "422")
# The current article stays put after 421/422, so a bare STAT names it.
resp, num, mid = s.stat()
check(num == 1, f"STAT after LAST's 422 should still be 1: {resp!r}")
# Naming an article by message-id leaves the current article alone
# (RFC 3977 6.2.1.2).
s.stat(2)
s.article(id3)
resp, num, mid = s.stat()
check(num == 2, f"ARTICLE <id> moved the current article: {resp!r}")

# --- HDR / XHDR -----------------------------------------------------------

# nntplib has no hdr(); this is what it would send.
resp, lines = s._longcmdstring("HDR Subject 1-3")
check(resp.startswith("225"), f"HDR Subject 1-3 should answer 225, got {resp!r}")
check(
    lines == ["1 First post", "2 Crosspost with dots", "3 =?UTF-8?Q?Gr=C3=BC=C3=9Fe?="],
    f"HDR Subject 1-3: {lines!r}",
)
resp, lines = s._longcmdstring(f"HDR subject {id2}")
check(lines == ["0 Crosspost with dots"], f"HDR subject {id2}: {lines!r}")
resp, lines = s._longcmdstring("HDR Message-ID 2-")
check(lines == [f"2 {id2}", f"3 {id3}"], f"HDR Message-ID 2-: {lines!r}")

resp, pairs = s.xhdr("subject", "1-3")
check(resp.startswith("221"), f"XHDR should answer 221 (RFC 2980), got {resp!r}")
check(
    pairs == [("1", "First post"), ("2", "Crosspost with dots"), ("3", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=")],
    f"XHDR subject 1-3: {pairs!r}",
)
resp, pairs = s.xhdr("from", id1)
check(pairs == [("0", "Alice <alice@example.com>")] or pairs == [("1", "Alice <alice@example.com>")],
      f"XHDR from {id1}: {pairs!r}")

# --- follow-up with References -------------------------------------------

resp = s.post(
    article(
        [
            ("From", "Bob <bob@example.com>"),
            ("Newsgroups", "local.test"),
            ("Subject", "Re: First post"),
            ("References", id1),
        ],
        [b"Alice wrote:", b"> Hello, world.", b"", b"Hi Alice."],
    )
)
check(resp.startswith("240"), f"follow-up POST: {resp!r}")
resp, count, first, last, name = s.group("local.test")
check((count, first, last) == (4, 1, 4), f"local.test after the follow-up: {resp!r}")
resp, over = s.over((4, 4))
check(len(over) == 1, f"OVER 4: {over!r}")
n, f = over[0]
check(f["subject"] == "Re: First post", f"OVER 4 subject {f['subject']!r}")
check(f["references"] == id1, f"OVER 4 references {f['references']!r}, expected {id1!r}")
check(f[":lines"] == "4", f"OVER 4 :lines {f[':lines']!r}")
id4 = f["message-id"]

# --- NEWNEWS --------------------------------------------------------------

# nntplib sends server-local time without GMT; allow a day either way.
past = UTC_NOW.replace(tzinfo=None) - datetime.timedelta(days=1)
future = UTC_NOW.replace(tzinfo=None) + datetime.timedelta(days=2)
resp, found = s.newnews("local.*", past)
check(resp.startswith("230"), f"NEWNEWS should answer 230, got {resp!r}")
check(sorted(found) == sorted([id1, id2, id3, id4]), f"NEWNEWS local.* since yesterday: {found!r}")
check(len(found) == len(set(found)), f"NEWNEWS repeats the crosspost: {found!r}")
resp, found = s.newnews("local.general", past)
check(found == [id2], f"NEWNEWS local.general: {found!r}")
resp, found = s.newnews("local.*", future)
check(found == [], f"NEWNEWS in the future: {found!r}")

# --- errors ---------------------------------------------------------------

expect_error("ARTICLE 9999", lambda: s.article(9999), nntplib.NNTPTemporaryError, "423")
expect_error("ARTICLE <nope@x>", lambda: s.article("<nope@x>"), nntplib.NNTPTemporaryError, "430")
expect_error("STAT <nope@x>", lambda: s.stat("<nope@x>"), nntplib.NNTPTemporaryError, "430")
expect_error(
    "POST without Subject",
    lambda: s.post(article([("From", "a@example.com"), ("Newsgroups", "local.test")], [b"x"])),
    nntplib.NNTPTemporaryError,
    "441",
)
expect_error(
    "POST to a missing group",
    lambda: s.post(
        article(
            [("From", "a@example.com"), ("Newsgroups", "no.such.group"), ("Subject", "lost")],
            [b"x"],
        )
    ),
    nntplib.NNTPTemporaryError,
    "441",
)
expect_error(
    "POST with a duplicate message-id",
    lambda: s.post(article(posts[1][0], [b"again"])),
    nntplib.NNTPTemporaryError,
    "441",
)
# The refused posts left nothing behind and the session is still in step.
resp, count, first, last, name = s.group("local.test")
check((count, first, last) == (4, 1, 4), f"refused posts changed local.test: {resp!r}")
s.quit()

# A fresh session with no group selected: 412 for a number, but a
# message-id still works (RFC 3977 6.2.1.2).
s = connect()
expect_error("ARTICLE 1 without a group", lambda: s.article(1), nntplib.NNTPTemporaryError, "412")
expect_error("NEXT without a group", s.next, nntplib.NNTPTemporaryError, "412")
resp, info = s.body(id3)
check(info.lines == body3, f"BODY {id3} with no group: {info.lines!r}")
s.quit()

done("post_read")
