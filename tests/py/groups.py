"""Group listing and selection as a newsreader sees them: LIST ACTIVE,
LIST NEWSGROUPS, GROUP, NEWGROUPS (RFC 3977 sections 6.1.1, 7.3, 7.6)."""

import datetime

import nntplib
from nntptest import check, connect, done, expect_error

STARTERS = {
    "local.general": "Local general discussion",
    "local.test": "Local test postings",
    "local.announce": "Announcements about this server",
}
# Where control messages are filed; no posting there ('n').
CONTROL = ["control", "control.cancel"]
EVERY = sorted(list(STARTERS) + CONTROL)

s = connect()

# LIST (ACTIVE): every starter group, postable, numbers that parse.
resp, groups = s.list()
check(resp.startswith("215"), f"LIST should answer 215, got {resp!r}")
by_name = {g.group: g for g in groups}
for name in STARTERS:
    check(name in by_name, f"LIST lacks {name}: {groups!r}")
    g = by_name[name]
    check(g.flag == "y", f"{name} should be postable ('y'), LIST says {g!r}")
    check(g.last.isdigit() and g.first.isdigit(), f"{name}: numbers should be digits: {g!r}")
check(len(by_name) == len(groups), f"LIST repeats a group: {groups!r}")

# LIST ACTIVE with a wildmat filters.
resp, groups = s.list("local.*")
names = sorted(g.group for g in groups)
check(names == sorted(STARTERS), f"LIST ACTIVE local.* gave {names!r}")
resp, groups = s.list("local.t*")
names = [g.group for g in groups]
check(names == ["local.test"], f"LIST ACTIVE local.t* gave {names!r}")
resp, groups = s.list("nothing.here.*")
check(resp.startswith("215") and groups == [], f"LIST ACTIVE nothing.here.* gave {resp!r} {groups!r}")
resp, groups = s.list("local.*,!local.test")
names = sorted(g.group for g in groups)
check(names == ["local.announce", "local.general"], f"LIST ACTIVE local.*,!local.test gave {names!r}")

# LIST NEWSGROUPS: descriptions.
resp, descs = s.descriptions("local.*")
check(resp.startswith("215"), f"LIST NEWSGROUPS should answer 215, got {resp!r}")
check(descs == STARTERS, f"descriptions('local.*') gave {descs!r}, expected {STARTERS!r}")
desc = s.description("local.test")
check(desc == "Local test postings", f"description('local.test') gave {desc!r}")
desc = s.description("no.such.group")
check(desc == "", f"description of a missing group should be empty, got {desc!r}")

# GROUP on an empty group: 211 with count 0 and one of the three empty-group
# forms of RFC 3977 section 6.1.1.2.
resp, count, first, last, name = s.group("local.test")
check(resp.startswith("211"), f"GROUP local.test should answer 211, got {resp!r}")
check(name == "local.test", f"GROUP echoed name {name!r}")
check(count == 0, f"empty local.test should have count 0, got {count} ({resp!r})")
check(
    last == first - 1 or (first == 0 and last == 0) or last >= first,
    f"empty group numbers not an RFC 3977 6.1.1.2 form: {resp!r}",
)

# GROUP on a missing group: 411, which nntplib raises as a temporary error.
expect_error("GROUP no.such", lambda: s.group("no.such"), nntplib.NNTPTemporaryError, "411")
# The failed GROUP must not have changed the selected group.
resp, count, first, last, name = s.group("local.general")
check(name == "local.general", f"GROUP local.general after 411 gave {resp!r}")

# NEWGROUPS: nntplib sends "NEWGROUPS yyyymmdd hhmmss" without GMT, that is
# server-local time; a day's margin either way covers any time zone skew.
utc_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
resp, groups = s.newgroups(utc_now - datetime.timedelta(days=1))
check(resp.startswith("231"), f"NEWGROUPS should answer 231, got {resp!r}")
names = sorted(g.group for g in groups)
check(names == EVERY, f"NEWGROUPS since yesterday gave {names!r}")
for g in groups:
    flag = "n" if g.group in CONTROL else "y"
    check(g.flag == flag, f"NEWGROUPS line should carry flag {flag!r}: {g!r}")
resp, groups = s.newgroups(utc_now + datetime.timedelta(days=2))
check(resp.startswith("231"), f"NEWGROUPS in the future should answer 231, got {resp!r}")
check(groups == [], f"NEWGROUPS in the future gave {groups!r}")
# A date object (midnight) and a far-past date work too.
resp, groups = s.newgroups(datetime.date(1999, 1, 1))
names = sorted(g.group for g in groups)
check(names == EVERY, f"NEWGROUPS 19990101 gave {names!r}")

s.quit()
done("groups")
