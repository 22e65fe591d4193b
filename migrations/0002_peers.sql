-- Feeds to peers (DESIGN.md "Flooding: the article log is the queue").
-- A peer's backlog is the articles after its cursor; nothing else is queued.

CREATE TABLE peers (
    name           TEXT    PRIMARY KEY,
    -- The last article id (articles.id) handled for this peer: sent and
    -- answered, or filtered out. Advanced only over a finished prefix.
    cursor         INTEGER NOT NULL,
    paused         INTEGER NOT NULL DEFAULT 0,
    offered        INTEGER NOT NULL DEFAULT 0,  -- CHECK/IHAVE sent
    accepted       INTEGER NOT NULL DEFAULT 0,  -- 235/239
    refused        INTEGER NOT NULL DEFAULT 0,  -- 435/438: it had it already
    rejected       INTEGER NOT NULL DEFAULT 0,  -- 437/439: it would not take it
    deferred       INTEGER NOT NULL DEFAULT 0,  -- 431/436: try later
    rate           REAL    NOT NULL DEFAULT 0,  -- accepted/s, last interval
    last_error     TEXT,
    last_error_at  INTEGER,
    connected_at   INTEGER
) WITHOUT ROWID;

-- Articles a peer asked us to offer again later (431 / 436).
CREATE TABLE peer_retry (
    peer       TEXT    NOT NULL,
    article_id INTEGER NOT NULL,
    retry_at   INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (peer, article_id)
) WITHOUT ROWID;
