-- History rows of new articles are written lazily (src/store/tail.rs): an
-- article whose log id is above history_through has no history row yet.
-- The running server finds it through its in-memory index of that tail;
-- other readers (the admin CLI) scan the tail. Every article stored before
-- this migration has its row already.
INSERT INTO meta (key, value)
    SELECT 'history_through',
           max((SELECT value FROM meta WHERE key = 'last_article_id'),
               coalesce((SELECT max(id) FROM articles), 0));
