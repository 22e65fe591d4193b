-- Readers who log in with AUTHINFO (RFC 4643). hash is an argon2id PHC
-- string; passwords are never stored.
CREATE TABLE users (
    name    TEXT    PRIMARY KEY,
    hash    TEXT    NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;
