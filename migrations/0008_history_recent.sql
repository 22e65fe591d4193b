-- History in two levels (src/store/writer.rs, "folding"). The writer
-- merges its in-memory tail into history_recent, which stays small, and
-- folds history_recent into history in rare sorted passes. Merging the
-- tail straight into a history of millions of ids wrote nearly one 8 KiB
-- leaf per few ids merged; a small table takes the frequent merges
-- cheaply, and a fold writes each leaf of the large one once per pass.
--
-- A message-id has its row in one of the two tables, never both: a fold
-- moves a slice of rows in one transaction, and a change to an id's row
-- updates it where it is (or inserts it here when it has none).
CREATE TABLE history_recent (
    msgid          TEXT    PRIMARY KEY,
    article_id     INTEGER,
    status         INTEGER NOT NULL,
    remember_until INTEGER
) WITHOUT ROWID;

CREATE INDEX history_recent_forget ON history_recent (remember_until)
    WHERE remember_until IS NOT NULL;

-- Every history row, for whoever reads by message-id: SQLite pushes a
-- `msgid = ?` (or `IN (...)`) into both tables' keys.
CREATE VIEW history_all AS
    SELECT msgid, article_id, status, remember_until FROM history_recent
    UNION ALL
    SELECT msgid, article_id, status, remember_until FROM history;
