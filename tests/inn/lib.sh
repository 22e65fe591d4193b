# Shared by tests/inn/setup.sh and tests/inn/restart.sh (sourced, not run).
# The caller sets DIR (the instance), PORT, CONF ($DIR/etc/inn.conf) and
# NEWSBIN (where INN's programs are).

# Runs a command as news with this instance's configuration.
as_news() {
    if [ "$(id -un)" = root ]; then
        su news -s /bin/sh -c "INNCONF='$CONF'; export INNCONF; unset NOTIFY_SOCKET LISTEN_PID; $*"
    else
        (export INNCONF=$CONF && unset NOTIFY_SOCKET LISTEN_PID && sh -c "$*")
    fi
}

# INN's own greeting on PORT (not another server that took the port).
greeting() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -n 1 <&3; printf 'QUIT\r\n' >&3" 2>/dev/null || true
}

# Starts INN with rc.news and returns when it answers on PORT; exits the
# script, saying why, when it does not within 30 s.
start_inn() {
    as_news "$NEWSBIN/rc.news start" >"$DIR/log/rc.news.out" 2>&1 || {
        cat "$DIR/log/rc.news.out" >&2
        exit 1
    }
    local deadline=$((SECONDS + 30))
    until greeting | grep -q '^200 inn.test InterNetNews'; do
        # innd gave up (e.g. the port is taken): no need to wait.
        if grep -qE 'SERVER cant|cannot bind' "$DIR/log/errlog" 2>/dev/null; then
            echo "innd did not start on 127.0.0.1:$PORT:" >&2
            cat "$DIR/log/errlog" >&2
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "INN did not answer on 127.0.0.1:$PORT within 30 s" >&2
            cat "$DIR/log/rc.news.out" "$DIR"/log/errlog "$DIR"/log/news.err 2>/dev/null >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}
