"""A group of 300 articles as a newsreader sees it when it first opens it:
GROUP, OVER over the whole range, LISTGROUP (RFC 3977 6.1.1, 6.1.2, 8.3)."""

from nntptest import check, connect, done

N = 300

s = connect()
for i in range(1, N + 1):
    resp = s.post(
        f"From: Loader <loader@example.com>\r\n"
        f"Newsgroups: local.test\r\n"
        f"Subject: article {i}\r\n"
        f"Message-ID: <bulk.{i}@example.com>\r\n"
        f"\r\n"
        f"body of article {i}\r\n".encode()
    )
    check(resp.startswith("240"), f"POST {i} should answer 240, got {resp!r}")

resp, count, first, last, name = s.group("local.test")
check((count, first, last) == (N, 1, N), f"GROUP local.test after {N} posts: {resp!r}")

resp, over = s.over((1, N))
check(resp.startswith("224"), f"OVER 1-{N} should answer 224, got {resp!r}")
check(len(over) == N, f"OVER 1-{N} gave {len(over)} entries")
numbers = [n for n, _ in over]
check(numbers == list(range(1, N + 1)), f"OVER numbers out of order or missing: {numbers[:10]}...")
for n, f in over:
    check(f["subject"] == f"article {n}", f"OVER {n} subject {f['subject']!r}")
    check(f["message-id"] == f"<bulk.{n}@example.com>", f"OVER {n} id {f['message-id']!r}")
    check(f[":lines"] == "1", f"OVER {n} :lines {f[':lines']!r}")

# A sub-range from the middle, as a reader paging through would ask.
resp, page = s.over((101, 150))
check([n for n, _ in page] == list(range(101, 151)), f"OVER 101-150: {[n for n, _ in page]!r}")

# nntplib has no listgroup(); this is what a client sends.
resp, lines = s._longcmdstring("LISTGROUP local.test")
check(resp.startswith(f"211 {N} 1 {N} local.test"), f"LISTGROUP status {resp!r}")
check(lines == [str(i) for i in range(1, N + 1)], f"LISTGROUP gave {len(lines)} numbers: {lines[:5]}...")
resp, lines = s._longcmdstring("LISTGROUP local.test 290-")
check(lines == [str(i) for i in range(290, N + 1)], f"LISTGROUP local.test 290-: {lines!r}")
# LISTGROUP selects the group with its first article current, whatever the
# range (RFC 3977 6.1.2.2), so NEXT goes to 2.
resp, num, mid = s.stat()
check(num == 1, f"current article after LISTGROUP should be 1: {resp!r}")
resp, num, mid = s.next()
check(num == 2, f"NEXT after LISTGROUP: {resp!r}")

s.quit()
done("over_large")
