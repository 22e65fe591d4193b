-- Refused and expired message-ids are forgotten once remember_until has
-- passed (`tidings expire`, or the server's own expiry runs). Rows of
-- stored articles have NULL there and stay out of this partial index, so
-- ingest pays nothing for it: history remains the one message-id index.
CREATE INDEX history_forget ON history (remember_until)
    WHERE remember_until IS NOT NULL;
