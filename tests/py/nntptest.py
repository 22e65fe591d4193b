"""Shared helpers for the nntplib real-client scripts.

Each script is run as `python3 <script>.py <host> <port>` by tests/nntplib.rs
against a fresh tidings server, asserts what a newsreader user would see, and
exits non-zero (with a message) on the first failure.
"""

import sys
import warnings

# nntplib is deprecated since 3.11 (PEP 594) and warns on import.
warnings.filterwarnings("ignore", category=DeprecationWarning)
import nntplib  # noqa: E402


def connect():
    """An nntplib client in reader mode on the host and port given on argv."""
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} HOST PORT")
    host, port = sys.argv[1], int(sys.argv[2])
    return nntplib.NNTP(host, port, readermode=True, timeout=10)


def expect_error(what, fn, cls, code):
    """Asserts that fn() raises nntplib error `cls` whose response starts
    with `code`; returns the response line."""
    try:
        result = fn()
    except cls as e:
        resp = e.response
        assert resp.startswith(code), f"{what}: expected {code}, server said {resp!r}"
        return resp
    except nntplib.NNTPError as e:
        raise AssertionError(
            f"{what}: expected {cls.__name__} {code}, got {type(e).__name__} {e.response!r}"
        )
    raise AssertionError(f"{what}: expected {cls.__name__} {code}, but it succeeded: {result!r}")


def check(cond, msg):
    """assert that survives python -O."""
    if not cond:
        raise AssertionError(msg)


def done(name):
    print(f"{name}: all checks passed")
