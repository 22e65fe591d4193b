"""COMPRESS DEFLATE (RFC 8054) with the C zlib as the client's compressor:
raw DEFLATE (wbits -15) both ways, a sync flush after every command.
Usage: compress.py HOST PORT. Exits non-zero on any mismatch."""

import socket
import sys
import zlib

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((host, port), timeout=10)


def plain_line():
    # A byte at a time, so nothing after the line is read ahead: after
    # 206 the next octet is compressed.
    line = b""
    while not line.endswith(b"\r\n"):
        octet = sock.recv(1)
        assert octet, "connection closed"
        line += octet
    return line[:-2].decode("utf-8", "replace")


assert plain_line().startswith("20"), "greeting"
sock.sendall(b"CAPABILITIES\r\n")
assert plain_line().startswith("101")
caps = []
while True:
    line = plain_line()
    if line == ".":
        break
    caps.append(line)
assert "COMPRESS DEFLATE" in caps, caps
sock.sendall(b"COMPRESS DEFLATE\r\n")
status = plain_line()
assert status.startswith("206 "), status

out = zlib.compressobj(6, zlib.DEFLATED, -15)
inp = zlib.decompressobj(-15)
pending = b""


def send(data):
    sock.sendall(out.compress(data) + out.flush(zlib.Z_SYNC_FLUSH))


def line():
    global pending
    while b"\r\n" not in pending:
        raw = sock.recv(65536)
        assert raw, "connection closed"
        pending += inp.decompress(raw)
    text, pending = pending.split(b"\r\n", 1)
    return text


def block():
    lines = []
    while True:
        ln = line()
        if ln == b".":
            return lines
        lines.append(ln[1:] if ln.startswith(b".") else ln)


def post(subject, wire_body):
    """POSTs to local.general a body already dot-stuffed; the status."""
    send(b"POST\r\n")
    assert line().startswith(b"340"), "POST " + subject
    send(
        b"From: Z <z@example.com>\r\nNewsgroups: local.general\r\n"
        b"Subject: " + subject + b"\r\n\r\n" + wire_body + b".\r\n"
    )
    status = line()
    assert status.startswith(b"240 "), status
    return status


send(b"GROUP local.general\r\n")
assert line().startswith(b"211 "), "GROUP"
body = b"Sent through the C zlib.\r\n..dot-stuffed on the wire\r\n" + b"zlib " * 300 + b"\r\n"
status = post(b"zlib client", body)
msgid = status.split()[-1] if b"<" in status else None
send(b"ARTICLE 1\r\n")
status = line()
assert status.startswith(b"220 1 "), status
article = b"\r\n".join(block()) + b"\r\n"
expected = body.replace(b"\r\n..", b"\r\n.")
assert article.endswith(expected), article[-200:]
# A large article that deflates to little: the server must inflate all
# of it without waiting for more input.
big = b"The same line, over and over.\r\n" * 8000
post(b"big and repetitive", big)
send(b"BODY 2\r\n")
assert line().startswith(b"222 2 "), "BODY 2"
assert b"\r\n".join(block()) + b"\r\n" == big, "big body differs"
send(b"OVER 1\r\n")
assert line().startswith(b"224"), "OVER"
over = block()
assert len(over) == 1 and b"\tzlib client\t" in over[0], over
send(b"QUIT\r\n")
assert line().startswith(b"205"), "QUIT"
print("ok", msgid)
