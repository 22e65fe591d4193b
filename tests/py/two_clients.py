"""Several newsreaders at once: what one posts, another sees at once, and
concurrent posters get distinct, gap-free article numbers (RFC 3977 6.1.1)."""

import threading

import nntplib
from nntptest import check, connect, done

poster, reader = connect(), connect()

# Read-your-neighbour's-write: after 240 the article is visible everywhere.
for i in range(1, 51):
    mid = f"<vis.{i}@example.com>"
    resp = poster.post(
        f"From: a@example.com\r\nNewsgroups: local.announce\r\nSubject: vis {i}\r\n"
        f"Message-ID: {mid}\r\n\r\nbody {i}\r\n".encode()
    )
    check(resp.startswith("240"), f"POST {i}: {resp!r}")
    try:
        resp, num, got = reader.stat(mid)
    except nntplib.NNTPError as e:
        raise AssertionError(f"article {i} posted (240) but another client's STAT says {e}")
    resp, count, first, last, name = reader.group("local.announce")
    check((count, last) == (i, i), f"after post {i} another client's GROUP says {resp!r}")

# Six clients post 30 articles each at the same time.
WORKERS, EACH = 6, 30
errors = []


def worker(k):
    try:
        c = connect()
        for i in range(EACH):
            resp = c.post(
                f"From: w{k}@example.com\r\nNewsgroups: local.general\r\nSubject: w{k} {i}\r\n"
                f"Message-ID: <w.{k}.{i}@example.com>\r\n\r\nbody {k} {i}\r\n".encode()
            )
            if not resp.startswith("240"):
                errors.append(f"worker {k} post {i}: {resp!r}")
        c.quit()
    except Exception as e:  # reported below, from the main thread
        errors.append(f"worker {k}: {type(e).__name__}: {e}")


threads = [threading.Thread(target=worker, args=(k,)) for k in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join(20)
check(not any(t.is_alive() for t in threads), "a posting client hung")
check(not errors, f"concurrent posts failed: {errors[:5]!r}")

total = WORKERS * EACH
resp, count, first, last, name = reader.group("local.general")
check((count, first, last) == (total, 1, total), f"GROUP after {total} concurrent posts: {resp!r}")
resp, over = reader.over((1, total))
numbers = [n for n, _ in over]
check(numbers == list(range(1, total + 1)), f"OVER numbers not 1..{total}: {numbers[:10]}...")
ids = sorted(f["message-id"] for _, f in over)
expected = sorted(f"<w.{k}.{i}@example.com>" for k in range(WORKERS) for i in range(EACH))
check(ids == expected, "OVER message-ids differ from those posted")
# Each client's own articles keep the order it posted them in.
for k in range(WORKERS):
    mine = [f["subject"] for _, f in over if f["from"] == f"w{k}@example.com"]
    check(mine == [f"w{k} {i}" for i in range(EACH)], f"worker {k}'s articles out of order: {mine!r}")

poster.quit()
reader.quit()
done("two_clients")
