-- The newest article ever deleted (by expiry, group removal or anything
-- else: a trigger notes every deletion). The history merge
-- (src/store/writer.rs) looks up whether a tail article is still stored
-- only when this is past the merged part of history; removals are almost
-- always of old articles, so it seldom has to. Articles removed before this
-- migration noted nothing, so it starts at the head of the log.
INSERT INTO meta (key, value)
    SELECT 'removed_through',
           max((SELECT value FROM meta WHERE key = 'last_article_id'),
               coalesce((SELECT max(id) FROM articles), 0));

CREATE TRIGGER articles_removed AFTER DELETE ON articles
BEGIN
    UPDATE meta SET value = max(value, OLD.id) WHERE key = 'removed_through';
END;
