-- The article store (DESIGN.md "Storage"). Times are Unix seconds (UTC).

-- Newsgroups we carry. low/high/count are kept by the writer at ingest and by
-- expiry; an empty group has low = high + 1 (RFC 3977 §6.1.1.2).
CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    status      TEXT    NOT NULL DEFAULT 'y' CHECK (status IN ('y', 'n', 'm')),
    description TEXT    NOT NULL DEFAULT '',
    low         INTEGER NOT NULL DEFAULT 1,
    high        INTEGER NOT NULL DEFAULT 0,
    count       INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL,
    creator     TEXT    NOT NULL DEFAULT ''
);

-- One row per article; id is the article log sequence (assigned by the writer,
-- strictly increasing, never reused: see meta.last_article_id). bytes is the
-- article exactly as served, after our Path prepend and Xref. msgid is not
-- indexed here: history is the one message-id index.
CREATE TABLE articles (
    id      INTEGER PRIMARY KEY,
    arrived INTEGER NOT NULL,
    msgid   TEXT    NOT NULL,
    bytes   BLOB    NOT NULL
);

-- (group, number) -> article, clustered, with the preformatted overview line
-- (fields 1-8 of LIST OVERVIEW.FMT without the number), so OVER, HDR and
-- LISTGROUP are one range scan of this table.
CREATE TABLE overview (
    group_id   INTEGER NOT NULL,
    number     INTEGER NOT NULL,
    article_id INTEGER NOT NULL,
    arrived    INTEGER NOT NULL,
    line       TEXT    NOT NULL,
    PRIMARY KEY (group_id, number)
) WITHOUT ROWID;

-- message-id -> article, and what became of it. status: 0 accepted,
-- 1 rejected, 2 cancelled, 3 expired/removed. remember_until: when a row of a
-- no-longer-stored article may be forgotten (NULL: while stored).
CREATE TABLE history (
    msgid          TEXT    PRIMARY KEY,
    article_id     INTEGER,
    status         INTEGER NOT NULL,
    remember_until INTEGER
) WITHOUT ROWID;

-- Counters that must survive deletes (e.g. the last article id ever used).
CREATE TABLE meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('last_article_id', 0);
