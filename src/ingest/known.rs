//! A Bloom filter over every message-id in history and its in-memory tail
//! (`store::tail`), so that CHECK and IHAVE for an id never seen before
//! (nearly all of a live feed) are answered without reading SQLite, and the
//! writer stores such an article without looking it up. "Maybe known" still
//! goes to the tail and history, which stay the authority; the filter only
//! ever saves a look-up.
//!
//! The writer adds the ids of each batch right after its commit and before
//! it answers anyone, so at every moment an id being received is either in
//! flight (see `InFlight`) or already in the filter.
//!
//! The filter is built from history in the background at start-up and again,
//! twice as large, when it fills up. Until the first one is built every
//! question goes to history. A build installs its new filter as `next`
//! before it reads history, so an id committed while it reads is added by
//! the writer (everything the writer adds goes to `next` too) or seen by the
//! read (which starts after `next` was installed): none is missed.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tracing::{info, warn};

use crate::store::{HistoryLevel, Store};

/// What the log says once a filter is built (at `info`, from this module,
/// `LOG_TARGET`): `tidings bench stream --history` waits for it.
pub(crate) const BUILT: &str = "message-id filter built";

/// The log target of this module's lines.
pub(crate) const LOG_TARGET: &str = module_path!();

/// Bits per id the filter is sized for, and bits set per id: about 1% of
/// new ids are then "maybe known" and cost a look-up.
const BITS_PER_ID: usize = 10;
const HASHES: u64 = 7;

/// The smallest filter: room for a million ids (2 MiB: the bit count is
/// rounded up to a power of two).
const MIN_CAPACITY: usize = 1 << 20;

/// A fixed-size Bloom filter whose bits are set and read without a lock.
struct Filter {
    words: Box<[AtomicU64]>,
    mask: u64,
    capacity: usize,
    added: AtomicUsize,
}

impl Filter {
    fn with_capacity(capacity: usize) -> Filter {
        let bits = (capacity.max(1) * BITS_PER_ID).next_power_of_two().max(64);
        let words = (0..bits / 64).map(|_| AtomicU64::new(0)).collect();
        Filter {
            words,
            mask: bits as u64 - 1,
            capacity,
            added: AtomicUsize::new(0),
        }
    }

    /// The bit positions of `msgid` (double hashing over one SipHash).
    fn positions(&self, msgid: &str) -> impl Iterator<Item = u64> + use<> {
        let h1 = BuildHasherDefault::<DefaultHasher>::default().hash_one(msgid.as_bytes());
        let h2 = splitmix(h1) | 1;
        let mask = self.mask;
        (0..HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }

    /// Sets the bits of `msgid`. It is counted only if it set one that
    /// was not set: an id added again (read in the tail and again in
    /// history by a build that a merge overtook, or added by the writer
    /// while a build read it) counts once, and so does every id history
    /// holds, but for the rare new one whose bits all happened to be set.
    fn insert(&self, msgid: &str) {
        let mut new = false;
        for bit in self.positions(msgid) {
            let mask = 1 << (bit % 64);
            let was = self.words[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
            new |= was & mask == 0;
        }
        if new {
            self.added.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn may_contain(&self, msgid: &str) -> bool {
        self.positions(msgid).all(|bit| {
            self.words[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0
        })
    }

    fn full(&self) -> bool {
        self.added.load(Ordering::Relaxed) > self.capacity
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Default)]
struct Filters {
    /// The filter questions are answered from; `None` until one is built.
    current: Option<Arc<Filter>>,
    /// The filter being built, if any.
    next: Option<Arc<Filter>>,
}

/// The message-ids history may hold, as far as a Bloom filter can tell.
#[derive(Default)]
pub struct KnownIds {
    filters: RwLock<Filters>,
    building: AtomicBool,
}

impl KnownIds {
    /// `true` when `msgid` is certainly not in history (nor was when its
    /// commit was answered); `false` when it may be, or when no filter is
    /// built yet: then ask history.
    pub fn surely_new(&self, msgid: &str) -> bool {
        let Ok(filters) = self.filters.read() else {
            return false;
        };
        filters
            .current
            .as_ref()
            .is_some_and(|f| !f.may_contain(msgid))
    }

    /// How many message-ids the filter holds: history and its tail as they
    /// were when it was built, and every id added since, each once (ids
    /// forgotten since are still counted; a new id whose bits were all set
    /// already is not, ~1% of them when the filter is full). `None` until
    /// the first one is built.
    pub fn held(&self) -> Option<usize> {
        let filters = self.filters.read().ok()?;
        Some(filters.current.as_ref()?.added.load(Ordering::Relaxed))
    }

    /// Adds ids the writer has just committed to history. Returns whether
    /// the filter is now fuller than it was sized for and no rebuild is
    /// under way (time to start one).
    pub fn add<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> bool {
        let Ok(filters) = self.filters.read() else {
            return false;
        };
        for id in ids {
            if let Some(f) = &filters.current {
                f.insert(id);
            }
            if let Some(f) = &filters.next {
                f.insert(id);
            }
        }
        filters.current.as_ref().is_some_and(|f| f.full()) && !self.building.load(Ordering::Acquire)
    }

    /// Builds a filter from history, sized for twice what it holds, and
    /// answers from it from then on. Does nothing if a build is running.
    pub async fn rebuild(self: Arc<Self>, store: Store) {
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        let started = std::time::Instant::now();
        let result = self.build(&store).await;
        self.building.store(false, Ordering::Release);
        match result {
            Ok((ids, bytes)) => info!(
                ids,
                kib = bytes / 1024,
                millis = started.elapsed().as_millis() as u64,
                "{BUILT}"
            ),
            Err(e) => {
                if let Ok(mut filters) = self.filters.write() {
                    filters.next = None;
                }
                warn!("building the message-id filter failed, asking history instead: {e}");
            }
        }
    }

    async fn build(&self, store: &Store) -> Result<(usize, usize), crate::store::StoreError> {
        let count = store.history_count().await? as usize;
        let filter = Arc::new(Filter::with_capacity((2 * count).max(MIN_CAPACITY)));
        if let Ok(mut filters) = self.filters.write() {
            filters.next = Some(filter.clone());
        }
        // Read history only after `next` is installed (see the module
        // comment), in chunks so no read holds a snapshot for long. The
        // tail first: an id leaves it only after history has it, so read
        // in this order none slips between the two (and the same holds
        // for history's two tables, `HistoryLevel::WALK`).
        for id in store.tail().ids() {
            filter.insert(&id);
        }
        for level in HistoryLevel::WALK {
            let mut after = String::new();
            loop {
                let chunk = store.history_ids_after(level, &after, 20_000).await?;
                let Some(last) = chunk.lines().inspect(|id| filter.insert(id)).max() else {
                    break;
                };
                after = last.to_owned();
            }
        }
        let ids = filter.added.load(Ordering::Relaxed);
        let bytes = filter.bytes();
        if let Ok(mut filters) = self.filters.write() {
            filters.current = filters.next.take();
        }
        Ok((ids, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_forgets_an_id_and_rarely_imagines_one() {
        let f = Filter::with_capacity(50_000);
        for i in 0..50_000 {
            f.insert(&format!("<{i}@known.example>"));
        }
        for i in 0..50_000 {
            assert!(f.may_contain(&format!("<{i}@known.example>")), "lost {i}");
        }
        let false_positives = (0..100_000)
            .filter(|i| f.may_contain(&format!("<{i}@new.example>")))
            .count();
        // Sized for 10 bits an id, 7 hashes: about 1% (a little under,
        // since the bit count is rounded up to a power of two).
        assert!(false_positives < 2_000, "{false_positives} false positives");
    }

    #[test]
    fn answers_nothing_until_built_and_feeds_the_filter_being_built() {
        let known = KnownIds::default();
        assert!(!known.surely_new("<a@x>"), "no filter yet: ask history");
        let next = Arc::new(Filter::with_capacity(1000));
        known.filters.write().unwrap().next = Some(next.clone());
        known.add(["<during@build>"]);
        assert!(next.may_contain("<during@build>"));
        {
            let mut f = known.filters.write().unwrap();
            f.current = f.next.take();
        }
        assert!(known.surely_new("<a@x>"));
        assert!(!known.surely_new("<during@build>"));
    }

    #[tokio::test]
    async fn is_built_from_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::StorageConfig {
            database: dir.path().join("t.db"),
            ..Default::default()
        };
        let (store, _) = Store::open(&config).await.expect("open");
        // More than one chunk of the walk.
        let url = format!("sqlite://{}", config.database.display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query(
            "INSERT INTO history (msgid, status) \
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 44999) \
             SELECT '<' || i || '@old.example>', 1 FROM n",
        )
        .execute(&pool)
        .await
        .expect("seed history");
        pool.close().await;
        let known = Arc::new(KnownIds::default());
        known.clone().rebuild(store.clone()).await;
        assert!((0..45_000).all(|i| !known.surely_new(&format!("<{i}@old.example>"))));
        assert_eq!(known.held(), Some(45_000));
        let new = (0..1000)
            .filter(|i| known.surely_new(&format!("<{i}@new.example>")))
            .count();
        assert!(new > 950, "only {new} of 1000 new ids known to be new");
        store.close().await;
    }

    #[test]
    fn counts_an_id_added_twice_once() {
        let f = Filter::with_capacity(1000);
        for id in ["<a@x>", "<b@x>", "<a@x>", "<c@x>", "<b@x>"] {
            f.insert(id);
        }
        assert_eq!(f.added.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn reports_when_full() {
        let known = KnownIds::default();
        known.filters.write().unwrap().current = Some(Arc::new(Filter::with_capacity(3)));
        assert!(!known.add(["<1@x>", "<2@x>", "<3@x>"]));
        assert!(known.add(["<4@x>"]));
        // Once a rebuild is under way, the writer is not asked again.
        known.building.store(true, Ordering::Release);
        assert!(!known.add(["<5@x>"]));
    }
}
