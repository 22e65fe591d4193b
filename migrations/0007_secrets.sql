-- Secrets the server makes for itself the first time it needs them (with
-- the operating system's random generator), and keeps with the articles
-- they protect: `cancel_lock` is the secret behind the Cancel-Locks of
-- posts made here (RFC 8315 §4). Whoever can read this database can make
-- the keys that cancel its users' posts, as with INN's inn-secrets.conf.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
