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

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use hashbrown::HashTable;

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
    ids: RwLock<Ids>,
    /// Whether this process's writer keeps `ids`: only then is a miss here
    /// an answer.
    live: AtomicBool,
}

impl Tail {
    /// The log id of `msgid` if it is in the tail; `None` also when this
    /// process has no live tail (see `is_live`).
    pub fn get(&self, msgid: &str) -> Option<i64> {
        self.ids.read().ok()?.get(msgid)
    }

    /// Whether the writer of this process keeps the tail.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Starts a live tail with what the database holds after
    /// `history_through` (the writer, at start).
    pub(crate) fn start(&self, entries: Vec<(String, i64)>) {
        if let Ok(mut ids) = self.ids.write() {
            *ids = Ids::default();
            ids.extend(entries);
        }
        self.live.store(true, Ordering::Release);
    }

    /// The writer stopped: from now on this process asks SQL.
    pub(crate) fn stop(&self) {
        self.live.store(false, Ordering::Release);
        if let Ok(mut ids) = self.ids.write() {
            *ids = Ids::default();
        }
    }

    /// Adds the ids of a committed batch, whose log ids all follow those
    /// the tail holds.
    pub(crate) fn add(&self, entries: impl IntoIterator<Item = (String, i64)>) {
        if let Ok(mut ids) = self.ids.write() {
            ids.extend(entries.into_iter().collect());
        }
    }

    /// How many ids the tail holds.
    pub fn len(&self) -> usize {
        self.ids
            .read()
            .map(|ids| ids.texts.entries.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f` of every id in the tail, collected (taken under the tail's
    /// lock, so keep `f` short).
    pub fn map_ids<T>(&self, mut f: impl FnMut(&str) -> T) -> Vec<T> {
        let Ok(ids) = self.ids.read() else {
            return Vec::new();
        };
        (0..ids.texts.entries.len())
            .filter_map(|i| std::str::from_utf8(ids.texts.text(i)).ok().map(&mut f))
            .collect()
    }

    /// The entries with a log id up to `through`, in message-id order (what
    /// a merge writes), as numbers to look up with `read` and
    /// `Ids::entry`: four octets each, where a copy of the ids would
    /// double what the tail takes. An id added twice comes newest first.
    pub(crate) fn sorted_through(&self, through: i64) -> Vec<u32> {
        let Ok(ids) = self.ids.read() else {
            return Vec::new();
        };
        let texts = &ids.texts;
        let mut positions: Vec<usize> = (texts.entries.iter().enumerate())
            .filter(|(_, e)| e.id <= through)
            .map(|(i, _)| i)
            .collect();
        positions.sort_unstable_by(|&a, &b| {
            (texts.text(a).cmp(texts.text(b))).then(texts.entries[b].id.cmp(&texts.entries[a].id))
        });
        (positions.into_iter())
            .map(|i| texts.first.wrapping_add(i as u32))
            .collect()
    }

    /// The tail, read-locked: what `sorted_through`'s numbers name.
    pub(crate) fn read(&self) -> Option<RwLockReadGuard<'_, Ids>> {
        self.ids.read().ok()
    }

    /// Drops the entries a committed merge wrote to history: those up to
    /// log id `through`, which come first.
    pub(crate) fn forget_through(&self, through: i64) {
        if let Ok(mut ids) = self.ids.write() {
            ids.pop_through(through);
        }
    }
}

/// Octets of message-id text a chunk of the tail's text holds (an id is
/// never split between two).
const CHUNK: usize = 64 * 1024;

/// The tail's ids in the order they were added (log order), and an index
/// of them by hash.
///
/// Each id costs its text (~45 octets from a real feed), a 16-octet entry
/// and ~5-10 octets of index: 80 octets per id in all for 300,000 ids
/// like the benchmark's. A map of shared strings took ~110 (a 64-octet
/// allocation per string, 24 octets per slot of the map and its slack),
/// and a merge's sorted copy 24 more, where its numbers here take 4. The
/// server's RSS after 1.2 million articles streamed went from 115 to 93
/// MiB.
#[derive(Default)]
pub(crate) struct Ids {
    texts: Texts,
    /// Entry numbers by the hash of their text. An id added again is found
    /// at its newest entry.
    index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// The ids' text one after another in chunks, and an entry each, in the
/// order added.
#[derive(Default)]
struct Texts {
    /// `chunks[0]` is chunk number `first_chunk`.
    chunks: VecDeque<Vec<u8>>,
    first_chunk: u32,
    /// `entries[0]` is entry number `first` (numbers wrap, but never as
    /// many are held at once).
    entries: VecDeque<Entry>,
    first: u32,
}

/// One id of the tail: its log id, and where its text starts (it ends
/// where the next entry's starts, or at its chunk's end).
#[derive(Clone, Copy)]
struct Entry {
    id: i64,
    chunk: u32,
    start: u32,
}

impl Ids {
    /// The message-id and log id of entry number `n`, if still held.
    pub(crate) fn entry(&self, n: u32) -> Option<(&str, i64)> {
        let i = self.texts.position(n)?;
        let text = std::str::from_utf8(self.texts.text(i)).ok()?;
        Some((text, self.texts.entries[i].id))
    }

    fn get(&self, msgid: &str) -> Option<i64> {
        let bytes = msgid.as_bytes();
        let n = (self.index).find(self.hasher.hash_one(bytes), |&n| {
            self.texts.numbered(n) == Some(bytes)
        })?;
        Some(self.texts.entries[self.texts.position(*n)?].id)
    }

    /// Adds `entries`, in log-id order.
    fn extend(&mut self, mut entries: Vec<(String, i64)>) {
        entries.sort_unstable_by_key(|(_, id)| *id);
        for (msgid, id) in &entries {
            self.push(msgid, *id);
        }
    }

    fn push(&mut self, msgid: &str, id: i64) {
        let bytes = msgid.as_bytes();
        let n = self.texts.push(bytes, id);
        let texts = &self.texts;
        let hash = self.hasher.hash_one(bytes);
        match (self.index).find_entry(hash, |&m| texts.numbered(m) == Some(bytes)) {
            Ok(mut older) => *older.get_mut() = n,
            Err(_) => {
                let hasher = &self.hasher;
                self.index.insert_unique(hash, n, |&m| {
                    hasher.hash_one(texts.numbered(m).unwrap_or_default())
                });
            }
        }
    }

    /// Drops the entries from the first up to the last with a log id up to
    /// `through`, with their index entries and the text no entry uses
    /// any more.
    fn pop_through(&mut self, through: i64) {
        while self.texts.entries.front().is_some_and(|e| e.id <= through) {
            let hash = self.hasher.hash_one(self.texts.text(0));
            let first = self.texts.first;
            // An id added again is indexed at its newer entry.
            if let Ok(found) = self.index.find_entry(hash, |&m| m == first) {
                found.remove();
            }
            self.texts.pop_front();
        }
        self.texts.drop_unused_chunks();
    }
}

impl Texts {
    /// Where entry number `n` is in `entries`.
    fn position(&self, n: u32) -> Option<usize> {
        let i = n.wrapping_sub(self.first) as usize;
        (i < self.entries.len()).then_some(i)
    }

    /// The text of entry number `n`, if still held.
    fn numbered(&self, n: u32) -> Option<&[u8]> {
        self.position(n).map(|i| self.text(i))
    }

    /// The text of `entries[i]`.
    fn text(&self, i: usize) -> &[u8] {
        let Some(e) = self.entries.get(i) else {
            return &[];
        };
        let Some(chunk) = (self.chunks).get(e.chunk.wrapping_sub(self.first_chunk) as usize) else {
            return &[];
        };
        let end = match self.entries.get(i + 1) {
            Some(next) if next.chunk == e.chunk => next.start as usize,
            _ => chunk.len(),
        };
        chunk.get(e.start as usize..end).unwrap_or_default()
    }

    /// Appends an id's text and entry; its entry number.
    fn push(&mut self, bytes: &[u8], id: i64) -> u32 {
        let room = (self.chunks.back()).is_some_and(|c| c.len() + bytes.len() <= c.capacity());
        if !room {
            self.chunks
                .push_back(Vec::with_capacity(CHUNK.max(bytes.len())));
        }
        let chunk = self.first_chunk.wrapping_add(self.chunks.len() as u32 - 1);
        let start = match self.chunks.back_mut() {
            Some(text) => {
                let start = text.len() as u32;
                text.extend_from_slice(bytes);
                start
            }
            None => 0,
        };
        let n = self.first.wrapping_add(self.entries.len() as u32);
        self.entries.push_back(Entry { id, chunk, start });
        n
    }

    fn pop_front(&mut self) {
        if self.entries.pop_front().is_some() {
            self.first = self.first.wrapping_add(1);
        }
    }

    /// Gives back the chunks before the first entry's.
    fn drop_unused_chunks(&mut self) {
        let used_from = match self.entries.front() {
            Some(e) => e.chunk,
            None => self.first_chunk.wrapping_add(self.chunks.len() as u32),
        };
        while self.first_chunk != used_from && self.chunks.pop_front().is_some() {
            self.first_chunk = self.first_chunk.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message-id shaped like a real feed's (and the benchmark's).
    fn msgid(i: usize) -> String {
        format!(
            "<{:016x}.s{i}.r1@bench.invalid>",
            crate::ingest::known::splitmix(i as u64)
        )
    }

    /// What a merge of `numbers` writes, in its order.
    fn merged(tail: &Tail, numbers: &[u32]) -> Vec<(String, i64)> {
        let ids = tail.read().expect("tail");
        (numbers.iter())
            .filter_map(|&n| ids.entry(n).map(|(m, id)| (m.to_owned(), id)))
            .collect()
    }

    fn live_tail(ids: std::ops::Range<usize>) -> Tail {
        let tail = Tail::default();
        tail.start(Vec::new());
        tail.add(ids.map(|i| (msgid(i), i as i64)));
        tail
    }

    impl Ids {
        /// Octets the tail has taken from the allocator.
        fn heap_bytes(&self) -> usize {
            let texts = &self.texts;
            texts.chunks.iter().map(Vec::capacity).sum::<usize>()
                + texts.chunks.capacity() * size_of::<Vec<u8>>()
                + texts.entries.capacity() * size_of::<Entry>()
                + self.index.allocation_size()
        }
    }

    #[test]
    fn finds_what_was_added_until_a_merge_forgets_it() {
        // Over many chunks of text.
        let tail = live_tail(1..30_001);
        assert_eq!(tail.len(), 30_000);
        for i in [1, 2, 999, 15_000, 30_000] {
            assert_eq!(tail.get(&msgid(i)), Some(i as i64), "id {i}");
        }
        assert_eq!(tail.get(&msgid(30_001)), None);
        assert_eq!(tail.get("<s1.r1@bench.invalid>"), None);

        tail.forget_through(20_000);
        assert_eq!(tail.len(), 10_000);
        assert_eq!(tail.get(&msgid(20_000)), None);
        assert_eq!(tail.get(&msgid(20_001)), Some(20_001));
        assert_eq!(tail.get(&msgid(30_000)), Some(30_000));
        // The text of forgotten ids is given back, a chunk at a time.
        let held = tail.read().map(|ids| ids.texts.chunks.len()).unwrap_or(0);
        assert!(held <= 8, "{held} chunks for 10,000 ids");

        // Added after a forget, and forgotten to the end.
        tail.add((30_001..30_101).map(|i| (msgid(i), i as i64)));
        assert_eq!(tail.get(&msgid(30_100)), Some(30_100));
        tail.forget_through(30_100);
        assert!(tail.is_empty());
        assert_eq!(tail.get(&msgid(30_100)), None);
        tail.add([(msgid(7), 30_200)]);
        assert_eq!(tail.get(&msgid(7)), Some(30_200));
    }

    #[test]
    fn an_id_added_again_is_found_at_its_newer_entry() {
        let tail = live_tail(1..11);
        tail.add([(msgid(3), 11)]);
        assert_eq!(tail.get(&msgid(3)), Some(11));
        // A merge writes the newer entry first (the history insert keeps
        // the first row it is given).
        let of_3: Vec<i64> = merged(&tail, &tail.sorted_through(11))
            .into_iter()
            .filter(|(m, _)| *m == msgid(3))
            .map(|(_, id)| id)
            .collect();
        assert_eq!(of_3, [11, 3]);
        // Forgetting the older entry leaves the newer one found.
        tail.forget_through(5);
        assert_eq!(tail.get(&msgid(3)), Some(11));
        tail.forget_through(11);
        assert_eq!(tail.get(&msgid(3)), None);
    }

    #[test]
    fn a_merge_reads_its_entries_in_message_id_order() {
        let tail = live_tail(1..5_001);
        let numbers = tail.sorted_through(4_000);
        let first = merged(&tail, &numbers);
        assert_eq!(first.len(), 4_000);
        assert!(first.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            first
                .iter()
                .all(|(m, id)| *id <= 4_000 && *m == msgid(*id as usize))
        );
        // The numbers still name the same entries after more are added.
        tail.add((5_001..9_001).map(|i| (msgid(i), i as i64)));
        assert_eq!(merged(&tail, &numbers), first);
    }

    #[test]
    fn a_long_id_takes_a_chunk_of_its_own() {
        let long = format!("<{}@example>", "x".repeat(CHUNK + 10));
        let tail = live_tail(1..3);
        tail.add([(long.clone(), 3), (msgid(4), 4)]);
        assert_eq!(tail.get(&long), Some(3));
        assert_eq!(tail.get(&msgid(2)), Some(2));
        assert_eq!(tail.get(&msgid(4)), Some(4));
        assert_eq!(tail.map_ids(str::len)[2], long.len());
    }

    #[test]
    fn an_id_costs_its_text_and_a_few_dozen_octets() {
        const N: usize = 300_000;
        let tail = live_tail(0..N);
        let text: usize = (0..N).map(|i| msgid(i).len()).sum();
        let bytes = tail.read().map(|ids| ids.heap_bytes()).unwrap_or(0);
        let per_id = bytes as f64 / N as f64;
        let over = (bytes - text) as f64 / N as f64;
        // ~46 octets of text; the entry is 16 and the index ~5-10.
        assert!(
            over < 48.0,
            "{per_id:.1} octets per id, {over:.1} past the text"
        );
    }

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
