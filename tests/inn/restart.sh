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
# as_news, start_inn.
. "$HERE/lib.sh"

"$HERE/stop.sh" "$DIR"
start_inn
