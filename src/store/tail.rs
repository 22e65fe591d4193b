//! The history tail: the newest articles, whose history rows are not
//! written yet.
//!
//! History is keyed by message-id, and message-ids from a real feed are in
//! no useful order, so every id inserted dirties a random leaf of that
//! index: with the ack-path commit holding one history row per article, a
//! batch of 20 articles wrote some 20 leaves of 8 KiB to the WAL besides
//! the articles themselves. Measured with random message-ids, one pipelined
//! connection ingested 33-37k articles/s that way, against 63-67k/s with
//! ids that happen to sort in arrival order (and 48-56k/s with this tail).
//!
//! So the writer's commit stores the article (its row holds the
//! message-id: the log is durable on its own) and the writer remembers the
//! id here, in memory. Once the tail is long enough (`merge_length`: it
//! grows with history), or after a second without articles, the writer
//! merges a sorted snapshot of it into history, a few ids per transaction
//! whenever no article is waiting, so each leaf is written about once per
//! merge rather than once per article; the last slice moves
//! `meta.history_through` to the merged end.
//! A crash loses nothing: at start the writer reads the articles after
//! `history_through` back into the tail.
//!
//! Past eight tails at their bound (some 2 million ids), history is two
//! tables (`Sizing`): the tail is merged into the small `history_recent`,
//! and that is folded into `history` in sorted passes, so the large table
//! is rewritten once per fold rather than a few ids per leaf per merge.
//!
//! Who asks by message-id looks here first and in history second (a merged
//! id is committed to history before it leaves the tail, so it is never in
//! neither). A process without the writer (the admin CLI) has no live tail
//! and scans the articles after `history_through` in SQL instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The meta key of the last article id whose history row is written.
pub(crate) const THROUGH: &str = "history_through";

/// The `meta` key of the newest article deleted (kept by a trigger on
/// `articles`, migration 0006).
pub(crate) const REMOVED_THROUGH: &str = "removed_through";

/// The shortest tail merged while ingest goes on (unless
/// `storage.history_tail_ids` is shorter): the length for a history of up
/// to 131,072 ids, or not yet counted.
const SHORTEST: usize = 16_384;

/// How long the tail grows before it is merged while ingest goes on, for a
/// history of `history_ids` message-ids (`None`: not known yet): an eighth
/// of history, at least `SHORTEST` and at most `most`
/// (`storage.history_tail_ids`).
///
/// A merge writes each leaf of the history index it touches once, and
/// about 100 ids share a leaf. So a tail of a fixed length costs more per
/// id the longer history grows: 16,384 ids merged into 2 million touched
/// ~11,000 of its ~20,000 leaves, 0.7 pages of 8 KiB written per id (and
/// again at the checkpoint), and one pipelined connection ingested ~20k
/// articles/s against ~30k into an empty history. An eighth of history
/// touches nearly every leaf, ~12 ids to a leaf: under 0.1 page per id
/// however long history is, up to the bound. Measured on the 2-core test
/// VM, 600,000 articles streamed into a history of 2 million ids, window
/// 64: 19.2k-23.3k articles/s with a tail of 16,384 (before this), 33.6k-
/// 41.8k with this length (250,000 there).
pub(crate) fn merge_length(history_ids: Option<usize>, most: usize) -> usize {
    let wanted = history_ids.map_or(SHORTEST, |ids| (ids / 8).max(SHORTEST));
    wanted.min(most)
}

/// How the writer merges its tail, for a history of some length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// The tail is merged once it is this long (`merge_length`).
    pub merge_at: usize,
    /// Into `history_recent`, to be folded into `history` later; else
    /// straight into `history`.
    pub into_recent: bool,
    /// `history_recent` is folded into `history` once it holds this many
    /// rows (`fold_length`).
    pub fold_at: usize,
}

impl Sizing {
    /// For a history of `history_ids` message-ids (`None`: not counted
    /// yet) and a tail of at most `most` (`storage.history_tail_ids`).
    ///
    /// A tail an eighth of history's length costs a merge ~0.08 page of
    /// 8 KiB written per id, whatever the length. Past eight times `most`
    /// the tail stays at `most` and a merge touches more of history's
    /// leaves per id (0.38 pages at 10 million ids), so from there the
    /// tail goes into the small `history_recent`, folded into `history`
    /// in rare passes: ~0.09 page per id in all at 10 million
    /// (`fold_length`).
    pub fn new(history_ids: Option<usize>, most: usize) -> Sizing {
        let merge_at = merge_length(history_ids, most);
        let into_recent = history_ids.is_some_and(|ids| ids / 8 > most);
        Sizing {
            merge_at,
            into_recent,
            fold_at: fold_length(history_ids, merge_at),
        }
    }
}

/// How many rows `history_recent` gathers before the writer folds it into
/// `history`, for a history of `history_ids` message-ids (`None`: not
/// counted yet, so no fold) and a tail merged at `merge_at` ids. (Besides
/// the tail's merges, refused, cancelled and removed ids get their rows
/// there when history has none for them.)
///
/// Merging a tail of T ids into R rows of `history_recent` writes about
/// R/100 leaves (a leaf holds ~100 ids), R/2 on average as it fills up to
/// F, so F/(200 T) pages per id. Folding F rows into H writes ~H/100
/// leaves once per F ids, H/(100 F) per id. The sum is least at
/// F = sqrt(2 T H): for a history of 10 million ids and a tail of 262,144,
/// F = 2.3 million and ~0.09 page of 8 KiB per id in all, where merging
/// the tail straight into history wrote ~0.38. Never less than one tail.
fn fold_length(history_ids: Option<usize>, merge_at: usize) -> usize {
    let Some(ids) = history_ids else {
        return usize::MAX;
    };
    let best = (2.0 * merge_at as f64 * ids as f64).sqrt() as usize;
    best.max(merge_at)
}

/// The message-ids of the articles after `history_through`, with their log
/// ids, kept by the process that runs the writer.
#[derive(Default)]
pub struct Tail {
    /// Shared with a merge's sorted copy (`sorted_through`), which then
    /// costs a pointer per id rather than a second copy of each.
    ids: RwLock<HashMap<Arc<str>, i64>>,
    /// Whether this process's writer keeps `ids`: only then is a miss here
    /// an answer.
    live: AtomicBool,
}

impl Tail {
    /// The log id of `msgid` if it is in the tail; `None` also when this
    /// process has no live tail (see `is_live`).
    pub fn get(&self, msgid: &str) -> Option<i64> {
        self.ids.read().ok()?.get(msgid).copied()
    }

    /// Whether the writer of this process keeps the tail.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Starts a live tail with what the database holds after
    /// `history_through` (the writer, at start).
    pub(crate) fn start(&self, entries: Vec<(String, i64)>) {
        if let Ok(mut ids) = self.ids.write() {
            ids.clear();
            ids.extend(entries.into_iter().map(|(m, id)| (Arc::from(m), id)));
        }
        self.live.store(true, Ordering::Release);
    }

    /// The writer stopped: from now on this process asks SQL.
    pub(crate) fn stop(&self) {
        self.live.store(false, Ordering::Release);
        if let Ok(mut ids) = self.ids.write() {
            ids.clear();
        }
    }

    /// Adds the ids of a committed batch.
    pub(crate) fn add(&self, entries: impl IntoIterator<Item = (String, i64)>) {
        if let Ok(mut ids) = self.ids.write() {
            ids.extend(entries.into_iter().map(|(m, id)| (Arc::from(m), id)));
        }
    }

    /// How many ids the tail holds.
    pub fn len(&self) -> usize {
        self.ids.read().map(|ids| ids.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every id in the tail.
    pub fn ids(&self) -> Vec<Arc<str>> {
        self.ids
            .read()
            .map(|ids| ids.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The entries with a log id up to `through`, in message-id order (what
    /// a merge writes).
    pub(crate) fn sorted_through(&self, through: i64) -> Vec<(Arc<str>, i64)> {
        let mut entries: Vec<(Arc<str>, i64)> = self
            .ids
            .read()
            .map(|ids| {
                ids.iter()
                    .filter(|(_, id)| **id <= through)
                    .map(|(m, id)| (m.clone(), *id))
                    .collect()
            })
            .unwrap_or_default();
        entries.sort_unstable();
        entries
    }

    /// Drops the entries a committed merge wrote to history.
    pub(crate) fn forget_through(&self, through: i64) {
        if let Ok(mut ids) = self.ids.write() {
            ids.retain(|_, id| *id > through);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_grows_with_history_between_its_bounds() {
        const MOST: usize = 262_144;
        // Not counted yet, or a short history: the shortest.
        assert_eq!(merge_length(None, MOST), 16_384);
        assert_eq!(merge_length(Some(0), MOST), 16_384);
        assert_eq!(merge_length(Some(100_000), MOST), 16_384);
        // An eighth of history.
        assert_eq!(merge_length(Some(1_000_000), MOST), 125_000);
        assert_eq!(merge_length(Some(2_000_000), MOST), 250_000);
        // No longer than configured.
        assert_eq!(merge_length(Some(10_000_000), MOST), MOST);
        assert_eq!(merge_length(None, 40), 40);
        assert_eq!(merge_length(Some(2_000_000), 40), 40);
    }

    #[test]
    fn a_long_history_takes_its_tail_in_two_levels() {
        const MOST: usize = 262_144;
        let not_yet = Sizing::new(None, MOST);
        assert!(!not_yet.into_recent);
        assert_eq!(not_yet.fold_at, usize::MAX);
        // Up to eight tails at their bound: straight into history.
        assert!(!Sizing::new(Some(2_000_000), MOST).into_recent);
        assert!(!Sizing::new(Some(8 * MOST), MOST).into_recent);
        let long = Sizing::new(Some(10_000_000), MOST);
        assert!(long.into_recent);
        assert_eq!(long.merge_at, MOST);
        assert_eq!(long.fold_at, 2_289_733);
        assert!(Sizing::new(Some(400), 40).into_recent);
    }

    #[test]
    fn the_recent_history_is_folded_when_it_costs_least() {
        // Not counted: no fold.
        assert_eq!(fold_length(None, 16_384), usize::MAX);
        // sqrt(2 T H).
        assert_eq!(fold_length(Some(10_000_000), 262_144), 2_289_733);
        assert_eq!(fold_length(Some(2_000_000), 250_000), 1_000_000);
        // Never shorter than a tail.
        assert_eq!(fold_length(Some(0), 16_384), 16_384);
        assert_eq!(fold_length(Some(1_000), 16_384), 16_384);
    }
}
