-- Overview rows of new articles are written behind them
-- (src/store/overview.rs): the writer queues them and writes a whole
-- queue, with the groups' counters, per transaction. An article whose log
-- id is above overview_through may have no overview row yet; the writer
-- queues those again at start from their Xref. Every article stored before
-- this migration has its rows already.
INSERT INTO meta (key, value)
    SELECT 'overview_through',
           max((SELECT value FROM meta WHERE key = 'last_article_id'),
               coalesce((SELECT max(id) FROM articles), 0));
