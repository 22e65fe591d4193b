"""Large posts from nntplib are answered without a 40 ms stall each.

nntplib leaves Nagle's algorithm on and writes an article 8 KiB at a
time; unless the server acknowledges each piece at once, the client holds
the next until Linux's delayed acknowledgement (40 ms or more) comes, and
every post larger than 8 KiB takes that long. This posts 30 articles of
~20 KB: the median post must take well under 40 ms. Each reads back whole.
"""

import statistics
import time

from nntptest import check, connect, done

s = connect()
body = b"".join(b"line %05d " % i + b"x" * 60 + b"\r\n" for i in range(280))
took = []
for i in range(30):
    article = (
        b"From: big@example.com\r\nNewsgroups: local.test\r\n"
        b"Subject: large post %d\r\nMessage-ID: <large-%d@quick.example>\r\n\r\n" % (i, i)
    ) + body
    started = time.perf_counter()
    resp = s.post(article)
    took.append(time.perf_counter() - started)
    check(resp.startswith("240"), f"POST {i}: {resp!r}")

median_ms = statistics.median(took) * 1000
check(median_ms < 30, f"a post of {len(body)} bytes took {median_ms:.1f} ms (median of 30)")

for i in (0, 29):
    _, info = s.body(f"<large-{i}@quick.example>")
    check(b"\r\n".join(info.lines) + b"\r\n" == body, f"body of large post {i} not as posted")
s.quit()
done("post_large_quick")
