-- The body store (src/store/bodies.rs): the body of a large article is
-- written once, into a segment file beside the database, instead of twice
-- (into the WAL, then into the database by a checkpoint). Its row keeps
-- the head (up to and including the blank line that ends it) in bytes, and
-- where the body is: segment, offset, length and CRC-32. An article whose
-- body is in bytes (every article stored before this migration, and the
-- small ones after it) has NULL there. Its size is always
-- length(bytes) + coalesce(body_len, 0).
ALTER TABLE articles ADD COLUMN body_seg INTEGER;
ALTER TABLE articles ADD COLUMN body_off INTEGER;
ALTER TABLE articles ADD COLUMN body_len INTEGER;
ALTER TABLE articles ADD COLUMN body_crc INTEGER;

-- One row per segment file: how many stored articles have their body in
-- it (the writer adds its own; a trigger takes away every deleted one,
-- whoever deletes it), and how far the writer has filled it. A segment with
-- no live body is free: the writer fills it again from the start.
CREATE TABLE body_segments (
    seg  INTEGER PRIMARY KEY,
    live INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0
);

CREATE TRIGGER articles_body_removed AFTER DELETE ON articles
WHEN OLD.body_seg IS NOT NULL
BEGIN
    UPDATE body_segments SET live = live - 1 WHERE seg = OLD.body_seg;
END;

-- The segment the writer fills (0: none yet), and the newest article whose
-- body is known to be on disk: every body of an article after it is checked
-- against its CRC when the writer starts, as a crash may have left the row
-- committed and the body not written.
INSERT INTO meta (key, value) VALUES ('body_segment', 0);
INSERT INTO meta (key, value)
    SELECT 'bodies_verified',
           max((SELECT value FROM meta WHERE key = 'last_article_id'),
               coalesce((SELECT max(id) FROM articles), 0));
