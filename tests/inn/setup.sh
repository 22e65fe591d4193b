#!/usr/bin/env bash
# A private INN 2.7 instance (Debian package inn2) for the interoperability
# tests in tests/inn.rs.
#
#   tests/inn/setup.sh DIR PORT [TIDINGS_HOST:PORT]
#
# Creates (or re-creates) an instance in DIR, owned by user news, listening
# on 127.0.0.1:PORT, pathhost inn.test, CNFS storage (one small cycbuff),
# groups local.test and inn.interop; 127.0.0.1 may feed it (streaming) and
# read from it. With a third argument (or TIDINGS_PORT in the environment:
# a port on 127.0.0.1, or host:port), INN feeds that tidings with innfeed,
# streaming (INN_FEED_STREAMING=false: IHAVE; INN_FEED_NO_CHECK=true:
# TAKETHIS without CHECK after the first accepted article), tuned to send
# at once and to write its status file (log/innfeed.status) every second.
# The tidings' Path identity is TIDINGS_IDENTITY (default tidings.test),
# also the newsfeeds site name, so INN does not offer tidings what already
# went through it. Start that tidings first: innfeed spools what comes while
# it cannot connect, and reads the spool back only minutes later.
#
# Starts INN and returns when it answers on PORT. Idempotent: a running
# instance in DIR is stopped first (tests/inn/stop.sh); on failure, what
# was started is stopped. Run it as root (it gives DIR to news) or as news.
#
# INN_NEWSBIN: where INN's programs are (default /usr/lib/news/bin).
# INN_CYCBUFF_MB: size of the CNFS cycbuff (default 64).
# INN_EXTRA_GROUPS: more groups to create, space-separated (e.g. the
# benchmark's bench.stream).
# INN_ICDSYNCCOUNT: articles between syncs of the active file (default 1,
# so tests see each article at once; INN's own default, 10, for benchmarks).
# Exit status 77: INN is not installed or cannot be run here (the caller
# may skip); anything else non-zero: a real failure.
set -euo pipefail

usage() {
    echo "usage: $0 DIR PORT [TIDINGS_HOST:PORT]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
DIR=$1
PORT=$2
FEED=${3:-${TIDINGS_PORT:-}}
IDENTITY=${TIDINGS_IDENTITY:-tidings.test}
STREAMING=${INN_FEED_STREAMING:-true}
NO_CHECK=${INN_FEED_NO_CHECK:-false}
CYCBUFF_MB=${INN_CYCBUFF_MB:-64}
HERE=$(cd "$(dirname "$0")" && pwd)

NEWSBIN=${INN_NEWSBIN:-/usr/lib/news/bin}
if [ ! -x "$NEWSBIN/innd" ] || [ ! -x "$NEWSBIN/rc.news" ] || ! id news >/dev/null 2>&1; then
    echo "INN is not installed ($NEWSBIN/innd missing; apt-get install inn2)" >&2
    exit 77
fi
ME=$(id -un)
if [ "$ME" != root ] && [ "$ME" != news ]; then
    echo "INN must run as user news: run the tests as root (or as news)" >&2
    exit 77
fi
case "$PORT" in '' | *[!0-9]*) usage ;; esac
if [ -n "$FEED" ]; then
    case "$FEED" in
    *:*) FEED_HOST=${FEED%:*} FEED_PORT=${FEED##*:} ;;
    *) FEED_HOST=127.0.0.1 FEED_PORT=$FEED ;;
    esac
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/etc/inn.conf

# as_news, start_inn.
. "$HERE/lib.sh"

# Idempotent: stop whatever runs from DIR, then start afresh.
"$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR/etc" "$DIR/db" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/tmp" "$DIR/cycbuffs"
mkdir -p "$DIR"/{etc,db,log,run,tmp,cycbuffs} \
    "$DIR"/spool/{articles,overview,incoming/tmp,outgoing,archive,innfeed}

# The package's configuration, then ours on top.
cp -a /etc/news/. "$DIR/etc/"

# inn.conf: every path into DIR (pathbin, pathnews, pathfilter and
# pathcontrol stay the package's).
sed -E '/^[[:space:]]*#?[[:space:]]*(domain|pathhost|server|port|bindaddress6?|sourceaddress6?|path(archive|articles|db|etc|http|incoming|log|outgoing|overview|run|spool|tmp)|doinnwatch|docnfsstat|ovmethod|hismethod|organization|artcutoff|nnrpdcheckart|wireformat|logipaddr|syslog|status|timer|icdsynccount|readertrack|nicekids|nicenewnews|pathalias|pathcluster|xrefslave|mta|wanttrash|remembertrash):/d' \
    /etc/news/inn.conf >"$CONF"
cat >>"$CONF" <<EOF

# --- private test instance (tests/inn/setup.sh) ---
domain:                 inn.test
pathhost:               inn.test
organization:           "tidings interoperability tests"
server:                 127.0.0.1
port:                   $PORT
bindaddress:            127.0.0.1
sourceaddress:          127.0.0.1
ovmethod:               tradindexed
hismethod:              hisv6
wireformat:             true
artcutoff:              0
nnrpdcheckart:          true
wanttrash:              false
remembertrash:          true
icdsynccount:           ${INN_ICDSYNCCOUNT:-1}
doinnwatch:             false
docnfsstat:             false
status:                 0
timer:                  0
readertrack:            false
nicekids:               0
nicenewnews:            0
xrefslave:              false
mta:                    "/bin/true %s"
patharchive:            $DIR/spool/archive
patharticles:           $DIR/spool/articles
pathdb:                 $DIR/db
pathetc:                $DIR/etc
pathhttp:               $DIR/tmp
pathincoming:           $DIR/spool/incoming
pathlog:                $DIR/log
pathoutgoing:           $DIR/spool/outgoing
pathoverview:           $DIR/spool/overview
pathrun:                $DIR/run
pathspool:              $DIR/spool
pathtmp:                $DIR/spool/incoming/tmp
EOF

# CNFS storage: one cycbuff (INN's defaults: tradspool, whose innfeed
# misses groups that were empty when it started).
dd if=/dev/zero of="$DIR/cycbuffs/one" bs=1M count="$CYCBUFF_MB" status=none
cat >"$DIR/etc/cycbuff.conf" <<EOF
cycbuffupdate:1
refreshinterval:1
cycbuff:ONE:$DIR/cycbuffs/one:$((CYCBUFF_MB * 1024))
metacycbuff:TEST:ONE
EOF
cat >"$DIR/etc/storage.conf" <<EOF
method cnfs {
    newsgroups: *
    class: 1
    options: TEST
}
EOF

# Who may feed INN: tidings, from loopback, streaming.
cat >"$DIR/etc/incoming.conf" <<EOF
streaming:          true
max-connections:    16
peer tidings {
    hostname:       "127.0.0.1, localhost, ::1"
    streaming:      true
    patterns:       "*"
}
EOF

# Who may read and post: loopback.
cat >"$DIR/etc/readers.conf" <<EOF
auth "loopback" {
    hosts: "127.0.0.1, localhost, ::1, stdin"
    default: "<loopback>"
}
access "loopback" {
    users: "<loopback>"
    newsgroups: "*"
    access: RPA
    addcanlockuser: none
}
EOF

# Cancel-Lock (RFC 8315): nnrpd adds an admin lock to every post, and
# gencancel makes cancels with the matching key, so the tests can check
# that tidings honours INN's locks (and INN tidings' keys).
cat >"$DIR/etc/inn-secrets.conf" <<EOF
cancels {
    canlockadmin: [ "${INN_CANLOCK_ADMIN:-tidings-interop-admin-secret-0123456789}" ]
}
EOF
chmod 640 "$DIR/etc/inn-secrets.conf"

# What INN feeds: tidings through innfeed (a channel funnel), streaming.
# innd starts without it: each ctlinnd newgroup restarts innfeed, and
# articles that come while it restarts are spooled for minutes. The feed
# is added with ctlinnd reload once the groups exist.
echo 'ME:!*/!local::' >"$DIR/etc/newsfeeds"
{
    echo 'ME:!*/!local::'
    if [ -n "$FEED" ]; then
        echo "$IDENTITY:*,!junk,!control,!control.*:Tm:innfeed!"
        echo "innfeed!:!*:Tc,Wnm*:$NEWSBIN/innfeed"
    fi
} >"$DIR/etc/newsfeeds.feed"

# innfeed: send at once, keep everything in memory, retry fast.
cat >"$DIR/etc/innfeed.conf" <<EOF
use-mmap:               false
log-file:               innfeed.log
status-file:            innfeed.status
initial-sleep:          0
host-queue-highwater:   10000
backlog-highwater:      10000
backlog-ckpt-period:    1
backlog-newfile-period: 2
backlog-rotate-period:  1
stats-period:           1
initial-reconnect-time: 1
max-reconnect-time:     2
dns-retry:              1
article-timeout:        600
response-timeout:       30
initial-connections:    1
max-connections:        1
dynamic-method:         0
max-queue-size:         100
streaming:              true
no-check-high:          95.0
no-check-low:           90.0
close-period:           86400
backlog-limit:          0
EOF
if [ -n "$FEED" ]; then
    cat >>"$DIR/etc/innfeed.conf" <<EOF

peer $IDENTITY {
    ip-name:            $FEED_HOST
    port-number:        $FEED_PORT
    force-ipv4:         true
    streaming:          $STREAMING
EOF
    if [ "$NO_CHECK" = true ]; then
        # No-CHECK mode from the first accepted article on: TAKETHIS alone.
        cat >>"$DIR/etc/innfeed.conf" <<EOF
    no-check-high:      1.0
    no-check-low:       0.5
    no-check-filter:    1.0
EOF
    fi
    cat >>"$DIR/etc/innfeed.conf" <<EOF
}
EOF
fi

# The active file: INN's own groups (the tests' groups come from ctlinnd).
cat >"$DIR/db/active" <<EOF
control 0000000000 0000000001 n
control.cancel 0000000000 0000000001 n
control.checkgroups 0000000000 0000000001 n
control.newgroup 0000000000 0000000001 n
control.rmgroup 0000000000 0000000001 n
junk 0000000000 0000000001 n
EOF
: >"$DIR/db/active.times"
: >"$DIR/db/newsgroups"
: >"$DIR/db/history"
touch "$DIR/db/.news.daily"

if [ "$ME" = root ]; then
    chown -R news:news "$DIR"
fi
if ! as_news "test -w '$DIR/db' && test -r '$CONF'"; then
    echo "user news cannot reach $DIR (is a parent directory private? set TMPDIR)" >&2
    exit 1
fi
as_news "$NEWSBIN/makedbz -i -o"

# Start, then wait for the greeting on PORT. Failing from here on stops it.
trap 'status=$?; [ $status -eq 0 ] || "$HERE/stop.sh" "$DIR" >/dev/null 2>&1; exit $status' EXIT
start_inn
for g in local.test inn.interop ${INN_EXTRA_GROUPS:-}; do
    as_news "$NEWSBIN/ctlinnd -s -t 20 newgroup $g y tidings-tests"
done
if [ -n "$FEED" ]; then
    cp "$DIR/etc/newsfeeds.feed" "$DIR/etc/newsfeeds"
    as_news "$NEWSBIN/ctlinnd -s -t 20 reload newsfeeds tidings-tests"
    # innfeed is up when it has written its pid.
    deadline=$((SECONDS + 10))
    until [ -s "$DIR/run/innfeed.pid" ] && kill -0 "$(cat "$DIR/run/innfeed.pid")" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "innfeed did not start within 10 s" >&2
            cat "$DIR"/log/errlog "$DIR"/log/innfeed.log 2>/dev/null >&2 || true
            exit 1
        fi
        sleep 0.05
    done
fi
echo "INN running in $DIR on 127.0.0.1:$PORT${FEED:+, feeding $IDENTITY at $FEED}"
