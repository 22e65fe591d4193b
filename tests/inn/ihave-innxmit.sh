#!/usr/bin/env bash
# Lock-step IHAVE from INN's own feeder: innxmit -s (streaming off) sends
# N new articles of ~2 KiB to HOST:PORT, one IHAVE at a time, and this
# prints the steady rate. A benchmark run by hand, not a test.
#
#   tests/inn/ihave-innxmit.sh INN_DIR HOST:PORT [N]
#
# INN_DIR: a private INN instance made by tests/inn/setup.sh (innxmit reads
# its inn.conf). HOST:PORT: the server to feed, tidings (a [[peer]] whose
# accept_from lets 127.0.0.1 in) or that INN itself. The articles go to
# GROUP (default bench.stream), which the server must carry. innxmit takes
# about a second to start whatever it sends, so a one-article batch is timed
# first and taken out: the rate is (N - 1) / (time for N - time for 1).
# Runs innxmit as user news (run it as root or as news).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 INN_DIR HOST:PORT [N]" >&2; exit 2; }
INN_DIR=$(cd "$1" && pwd)
HOST=${2%:*}
PORT=${2##*:}
N=${3:-6000}
GROUP=${GROUP:-bench.stream}
NEWSBIN=${INN_NEWSBIN:-/usr/lib/news/bin}
[ -x "$NEWSBIN/innxmit" ] || { echo "innxmit not found in $NEWSBIN" >&2; exit 77; }
[ -f "$INN_DIR/etc/inn.conf" ] || { echo "no inn.conf in $INN_DIR/etc" >&2; exit 2; }

WORK=$(mktemp -d /tmp/ihave-innxmit.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# Articles in native form (LF line ends, no dot-stuffing), as innxmit reads
# them from a spool; the batch files name each with its message-id.
python3 - "$WORK" "$N" "$GROUP" <<'PY'
import os, sys
work, n, group = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tag = f"{os.getpid()}.{os.urandom(4).hex()}"
body = "".join(f"line {i:02} of a benchmark article, about seventy octets long......\n" for i in range(26))
os.mkdir(f"{work}/articles")
for name, first, count in (("one", 0, 1), ("batch", 1, n)):
    with open(f"{work}/{name}", "w") as batch:
        for i in range(first, first + count):
            mid = f"<ix{i}.{tag}@innxmit.invalid>"
            path = f"{work}/articles/{i}"
            with open(path, "w") as f:
                f.write(f"Path: innxmit.invalid!not-for-mail\nFrom: bench <bench@innxmit.invalid>\n"
                        f"Newsgroups: {group}\nSubject: innxmit article {i}\nMessage-ID: {mid}\n"
                        f"Date: Mon, 07 Dec 2026 12:00:00 +0000\n\n{body}")
            batch.write(f"{path} {mid}\n")
PY
chmod -R a+rX "$WORK"
id news >/dev/null 2>&1 && chown news "$WORK" "$WORK/one" "$WORK/batch"

feed() {
    local batch=$1 start end
    start=$(date +%s.%N)
    if [ "$(id -un)" = news ]; then
        INNCONF="$INN_DIR/etc/inn.conf" "$NEWSBIN/innxmit" -s -P "$PORT" "$HOST" "$batch"
    else
        su news -s /bin/sh -c "INNCONF='$INN_DIR/etc/inn.conf' '$NEWSBIN/innxmit' -s -P '$PORT' '$HOST' '$batch'"
    fi
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

one=$(feed "$WORK/one")
all=$(feed "$WORK/batch")
# innxmit removes a batch file once it has sent everything in it.
if [ -s "$WORK/batch" ]; then
    echo "innxmit left $(wc -l < "$WORK/batch") articles unsent" >&2
    exit 1
fi
printf 'innxmit -s to %s: %d articles in %.2f s, start-up %.2f s: %.0f articles/s\n' \
    "$2" "$N" "$all" "$one" "$(echo "($N - 1) / ($all - $one)" | bc -l)"
