#!/usr/bin/env bash
# Stops the private INN instance that tests/inn/setup.sh made in DIR, and
# every process it started (innd, innfeed, nnrpd, ...): found by the
# INNCONF=DIR/etc/inn.conf in their environment, ended by process id.
#
#   tests/inn/stop.sh DIR
#
# Idempotent: nothing running is not an error. The files stay (the caller
# removes DIR).
set -uo pipefail

[ $# -eq 1 ] || {
    echo "usage: $0 DIR" >&2
    exit 2
}
[ -d "$1" ] || exit 0
DIR=$(cd "$1" && pwd)
CONF=$DIR/etc/inn.conf
NEWSBIN=/usr/lib/news/bin

# Whether process $1 belongs to this instance: its environment holds our
# INNCONF (pid files alone could name a reused pid).
ours() {
    tr '\0' '\n' 2>/dev/null <"/proc/$1/environ" | grep -qxF "INNCONF=$CONF"
}

# The processes of this instance.
instance_pids() {
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$$" ] && continue
        ours "$p" && echo "$p"
    done
}

# Whether any of the given processes of this instance still runs.
alive() {
    local pid
    for pid in "$@"; do
        ours "$pid" && return 0
    done
    return 1
}

innd_pid=$(cat "$DIR/run/innd.pid" 2>/dev/null || true)
# Everything of the instance before the shutdown, and again after it.
pids=$(instance_pids)
if [ -n "$innd_pid" ] && ours "$innd_pid" && [ -x "$NEWSBIN/ctlinnd" ]; then
    # A clean shutdown (innd closes innfeed's funnel, innfeed exits).
    if [ "$(id -un)" = root ]; then
        su news -s /bin/sh -c "INNCONF='$CONF' $NEWSBIN/ctlinnd -s -t 10 shutdown tests" 2>/dev/null
    else
        INNCONF=$CONF "$NEWSBIN/ctlinnd" -s -t 10 shutdown tests 2>/dev/null
    fi
fi

pids="$pids $(instance_pids)"
# shellcheck disable=SC2086
for signal in none TERM KILL; do
    deadline=$((SECONDS + 5))
    while alive $pids && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    alive $pids || break
    [ $signal = none ] && continue
    for pid in $pids; do
        ours "$pid" && kill -s "$signal" "$pid" 2>/dev/null
    done
    pids="$pids $(instance_pids)"
done
rm -f "$DIR/run/innd.pid" "$DIR/run/innfeed.pid" "$DIR/run/control" "$DIR/run/nntpin"
alive $pids && {
    echo "INN in $DIR did not stop: $pids" >&2
    exit 1
}
exit 0
