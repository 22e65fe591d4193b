"""Session basics as a newsreader sees them: greeting, CAPABILITIES, DATE,
HELP, QUIT (RFC 3977 sections 5.1-5.4, 7.1)."""

import datetime

from nntptest import check, connect, done

s = connect()

welcome = s.getwelcome()
check(welcome.startswith("200"), f"welcome should be 200 (posting allowed), got {welcome!r}")

caps = s.getcapabilities()
for cap in ["VERSION", "READER", "POST", "OVER", "HDR", "LIST"]:
    check(cap in caps, f"CAPABILITIES lacks {cap}: {caps!r}")
check("2" in caps["VERSION"], f"VERSION should advertise 2: {caps['VERSION']!r}")
# LIST names the keywords it supports; a reader needs at least these.
for kw in ["ACTIVE", "NEWSGROUPS"]:
    check(kw in caps["LIST"], f"LIST capability lacks {kw}: {caps['LIST']!r}")
# After MODE READER a reader server must not still advertise MODE-READER.
check("MODE-READER" not in caps, f"MODE-READER advertised in reader mode: {caps!r}")

resp, when = s.date()
check(resp.startswith("111"), f"DATE should answer 111, got {resp!r}")
check(isinstance(when, datetime.datetime), f"date() should give a datetime, got {when!r}")
# nntplib returns a naive datetime in UTC.
now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
skew = abs((now - when).total_seconds())
check(skew < 60, f"DATE {when} is {skew:.0f}s away from now ({now})")

resp, lines = s.help()
check(resp.startswith("100"), f"HELP should answer 100, got {resp!r}")
check(len(lines) > 0, "HELP text is empty")
text = "\n".join(lines).upper()
for cmd in ["ARTICLE", "GROUP", "OVER", "POST"]:
    check(cmd in text, f"HELP does not mention {cmd}: {lines!r}")

resp = s.quit()
check(resp.startswith("205"), f"QUIT should answer 205, got {resp!r}")

done("session")
