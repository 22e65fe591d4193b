"""Kill-and-restart soak, run by hand (not in CI):

    cargo build --release
    python3 tests/soak/kill_restart.py [BINARY] [ARTICLES] [KILLS] [compress]
    SOAK_STORAGE='history_tail_ids = 40' python3 tests/soak/kill_restart.py ...

Server A feeds server B (streaming, CHECK/TAKETHIS). Three posters post
ARTICLES articles into A while B is SIGKILLed and restarted KILLS times and
A every third time. A poster whose POST got no answer posts the same
message-id again (a 441 "duplicate" means the first one was stored). At
the end both servers must hold every article, each exactly once, numbered
1..ARTICLES without gaps. Exits 0 when they do. With `compress`, A's
feed to B goes through COMPRESS DEFLATE. SOAK_STORAGE is added to both
servers' [storage] section: a tail of 40 ids puts history in its two
tables (and folds one into the other) from the first few hundred articles,
so kills land mid-merge and mid-fold.
"""
import os, random, signal, socket, subprocess, sys, tempfile, threading, time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/tidings"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 60000
KILLS = int(sys.argv[3]) if len(sys.argv) > 3 else 15
COMPRESS = len(sys.argv) > 4 and sys.argv[4] == "compress"
D = tempfile.mkdtemp(prefix="tidings-soak-")
STORAGE = os.environ.get("SOAK_STORAGE", "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PA, PB = free_port(), free_port()

def cfg(name, port, extra):
    p = f"{D}/{name}.toml"
    open(p, "w").write(f'[server]\nlisten = ["127.0.0.1:{port}"]\npath_identity = "{name}.test"\n'
                       f'[storage]\ndatabase = "{D}/{name}.db"\n{STORAGE}\n{extra}')
    return p

ca = cfg("a", PA, f'[[peer]]\nname = "b"\npath_identity = "b.test"\naddress = "127.0.0.1:{PB}"\n'
         + ("compress = true\n" if COMPRESS else ""))
cb = cfg("b", PB, '[[peer]]\nname = "a"\npath_identity = "a.test"\naccept_from = ["127.0.0.1"]\n')

def start(conf, name):
    log = open(f"{D}/{name}.log", "a")
    p = subprocess.Popen([BIN, "serve", "--config", conf], stdout=log, stderr=log)
    port = PA if name == "a" else PB
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not start")

a = start(ca, "a"); b = start(cb, "b")
acked = set(); lock = threading.Lock(); done = threading.Event()

def poster(k):
    i = k; s = None; f = None
    while i < N:
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", PA), timeout=10, source_address=("127.0.0.2", 0)); f = s.makefile("rb"); f.readline()
            s.sendall(b"POST\r\n"); l = f.readline()
            if not l.startswith(b"340"): raise OSError(l)
            art = (f"From: soak <s@example.com>\r\nNewsgroups: local.test\r\nSubject: soak {i}\r\n"
                   f"Message-ID: <soak-{i}@test>\r\n\r\n" + ("body line %d\r\n" % i) * 20 + ".\r\n").encode()
            s.sendall(art); l = f.readline()
            if l.startswith(b"240") or b"uplicate" in l:
                with lock: acked.add(i)
                i += 3
            elif not l:
                raise OSError("closed")
            else:
                raise SystemExit(f"POST {i}: {l!r}")
        except OSError:
            s = None; time.sleep(0.2)
    done.set()

ts = [threading.Thread(target=poster, args=(k,)) for k in range(3)]
for t in ts: t.start()
for k in range(KILLS):
    time.sleep(random.uniform(0.3, 1.0))
    if k % 3 == 1:
        a.send_signal(signal.SIGKILL); a.wait(); print(f"killed A ({len(acked)} acked so far)", flush=True); a = start(ca, "a")
    b.send_signal(signal.SIGKILL); b.wait(); print(f"killed B ({len(acked)} acked so far)", flush=True)
    time.sleep(random.uniform(0.0, 0.5)); b = start(cb, "b")
for t in ts: t.join()
print("posted", len(acked), flush=True)

def cmd(f, s, line):
    s.sendall(line.encode() + b"\r\n"); return f.readline().decode().rstrip()

def listgroup(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=("127.0.0.2", 0)); f = s.makefile("rb"); f.readline()
    st = cmd(f, s, "LISTGROUP local.test")
    nums = []
    if st.startswith("211"):
        while True:
            l = f.readline().rstrip()
            if l == b".": break
            nums.append(int(l))
    return st, nums, s, f

deadline = time.time() + 120
while True:
    st, nums, s, f = listgroup(PB)
    if len(nums) >= N or time.time() > deadline: break
    time.sleep(1)
print("B:", st)
missing = [i for i in range(N) if not cmd(f, s, f"STAT <soak-{i}@test>").startswith("223")]
sa, na, _, _ = listgroup(PA)
print("A:", sa)
print(f"B has {len(nums)} numbers, {len(set(nums))} distinct; missing on B: {len(missing)} {missing[:10]}")
ok = len(nums) == N and len(set(nums)) == N and not missing and len(na) == N
for p in (a, b): p.send_signal(signal.SIGTERM); p.wait()
print("OK" if ok else f"FAIL (logs in {D})")
if ok:
    subprocess.run(["rm", "-rf", D])
sys.exit(0 if ok else 1)
