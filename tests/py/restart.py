"""What a newsreader sees across a server restart (run twice: `post` before
the restart, `check` after): same numbers, same bytes, and numbering that
carries on (RFC 3977 6.1.1.2: article numbers are never reused)."""

import datetime
import sys

from nntptest import check, connect, done

MODE = sys.argv.pop()  # connect() reads host and port from argv
BODY = [b"kept across a restart", b".dot line", "é ✓".encode()]


def post(s, groups, subject, mid=None):
    head = f"From: a@example.com\r\nNewsgroups: {groups}\r\nSubject: {subject}\r\n"
    if mid:
        head += f"Message-ID: {mid}\r\n"
    resp = s.post(head.encode() + b"\r\n" + b"\r\n".join(BODY) + b"\r\n")
    check(resp.startswith("240"), f"POST {subject!r}: {resp!r}")


s = connect()
if MODE == "post":
    post(s, "local.test", "one", "<one@restart.example>")
    post(s, "local.test,local.general", "two", "<two@restart.example>")
    post(s, "local.test", "three (server-made id)")
    s.quit()
    done("restart post")
elif MODE == "check":
    resp, count, first, last, name = s.group("local.test")
    check((count, first, last) == (3, 1, 3), f"local.test after restart: {resp!r}")
    resp, count, first, last, name = s.group("local.general")
    check((count, first, last) == (1, 1, 1), f"local.general after restart: {resp!r}")
    s.group("local.test")
    resp, info = s.body(2)
    check(info.message_id == "<two@restart.example>", f"BODY 2 after restart: {resp!r}")
    check(info.lines == BODY, f"BODY 2 after restart differs: {info.lines!r}")
    old_id = s.over((3, 3))[1][0][1]["message-id"]

    post(s, "local.test,local.general", "four", "<four@restart.example>")
    post(s, "local.test", "five (server-made id)")
    resp, count, first, last, name = s.group("local.test")
    check((count, first, last) == (5, 1, 5), f"local.test after restart and two posts: {resp!r}")
    resp, over = s.over((1, 5))
    subjects = [f["subject"] for _, f in over]
    check(
        subjects == ["one", "two", "three (server-made id)", "four", "five (server-made id)"],
        f"OVER after restart: {subjects!r}",
    )
    new_id = over[4][1]["message-id"]
    check(new_id != old_id, f"server made the same message-id twice: {new_id}")
    resp, count, first, last, name = s.group("local.general")
    check((count, first, last) == (2, 1, 2), f"local.general after restart and a crosspost: {resp!r}")
    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(days=1)
    resp, found = s.newnews("local.*", past)
    check(len(found) == 5 and len(set(found)) == 5, f"NEWNEWS after restart: {found!r}")
    s.quit()
    done("restart check")
else:
    sys.exit(f"mode must be post or check, not {MODE!r}")
