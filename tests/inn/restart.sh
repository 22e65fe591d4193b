#!/usr/bin/env bash
# Restarts the private INN instance that tests/inn/setup.sh made in DIR,
# keeping its spool, history and configuration: stops every process of it
# (tests/inn/stop.sh), starts it again with rc.news and returns when it
# answers on 127.0.0.1:PORT, as an operator's `rc.news stop; rc.news start`.
#
#   tests/inn/restart.sh DIR PORT
#
# Run it as root or as news, as setup.sh.
set -euo pipefail

[ $# -eq 2 ] || {
    echo "usage: $0 DIR PORT" >&2
    exit 2
}
DIR=$(cd "$1" && pwd)
PORT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
CONF=$DIR/etc/inn.conf
NEWSBIN=${INN_NEWSBIN:-/usr/lib/news/bin}
START="INNCONF='$CONF'; export INNCONF; unset NOTIFY_SOCKET LISTEN_PID; $NEWSBIN/rc.news start"

"$HERE/stop.sh" "$DIR"
if [ "$(id -un)" = root ]; then
    su news -s /bin/sh -c "$START" >"$DIR/log/rc.news.out" 2>&1
else
    sh -c "$START" >"$DIR/log/rc.news.out" 2>&1
fi
deadline=$((SECONDS + 30))
until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -n 1 <&3; printf 'QUIT\r\n' >&3" 2>/dev/null |
    grep -q '^200 inn.test InterNetNews'; do
    if [ $SECONDS -ge $deadline ]; then
        echo "INN did not answer on 127.0.0.1:$PORT within 30 s after its restart" >&2
        cat "$DIR/log/rc.news.out" "$DIR/log/errlog" 2>/dev/null >&2 || true
        exit 1
    fi
    sleep 0.1
done
