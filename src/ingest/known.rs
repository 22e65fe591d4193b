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
//! The filter is built from history in the background at start-up. When it
//! fills up it grows by a layer twice as large, with more bits per id
//! (a scalable Bloom filter): an id is new when no layer may hold it, and
//! new ids go to the newest layer. Growing reads nothing. Rebuilding from
//! history instead, every time the filter doubled, took ~0.9 s of CPU per
//! million ids held (926 ms at 1.09 million), ~1.7 µs per id added, and a
//! stream of 2 KiB articles at window 256 lost a fifth of its rate while
//! it ran: in the 200,000 articles after the first million, 53.5k and
//! 55.2k articles/s where a layer grown took 64.8k and 73.1k (the first
//! million ~78k both ways). The filter is built from history
//! again only when it holds more than twice what history does (ids
//! forgotten since, which a Bloom filter cannot drop) or has `MAX_LAYERS`.
//! A build installs its new filter as `next` before it reads history, so an
//! id committed while it reads is added by the writer (everything the
//! writer adds goes to `next` too) or seen by the read (which starts after
//! `next` was installed): none is missed.

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

/// Bits per id a filter built from history is sized for: with 7 hashes
/// about 1% of new ids are then "maybe known" and cost a look-up.
const BITS_PER_ID: usize = 10;

/// Bits per id added with each layer grown, so that the layers' false
/// positives add up to ~2% at most, however many there are: ~0.8%, 0.5%,
/// 0.3%, 0.2%, ... when each is full (hashes: 0.69 per bit per id).
const MORE_BITS_PER_LAYER: usize = 1;

/// Layers at most: past this the filter is built from history again, as
/// one layer. Six layers hold 63 times what the first does: grown from a
/// million ids, 111 MiB for 63 million.
const MAX_LAYERS: usize = 6;

/// The smallest filter: room for a million ids (1.25 MiB).
const MIN_CAPACITY: usize = 1 << 20;

/// A fixed-size Bloom filter whose bits are set and read without a lock.
struct Filter {
    words: Box<[AtomicU64]>,
    bits: u64,
    capacity: usize,
    bits_per_id: usize,
    hashes: u64,
    added: AtomicUsize,
}

/// The hash every layer's bit positions come from (SipHash), taken once
/// per id whatever the number of layers.
fn hash(msgid: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(msgid.as_bytes())
}

impl Filter {
    fn with_capacity(capacity: usize, bits_per_id: usize) -> Filter {
        let bits = (capacity.max(1) * bits_per_id).next_multiple_of(64);
        let words = (0..bits / 64).map(|_| AtomicU64::new(0)).collect();
        Filter {
            words,
            bits: bits as u64,
            capacity,
            bits_per_id,
            // ln 2 hashes per bit per id: the fewest false positives.
            hashes: ((bits_per_id * 69 + 50) / 100).max(1) as u64,
            added: AtomicUsize::new(0),
        }
    }

    /// The bit positions of an id of hash `h1` (double hashing, each
    /// 64-bit hash taken to the filter's size by multiplying: the size
    /// need not be a power of two, which could take twice the memory).
    fn positions(&self, h1: u64) -> impl Iterator<Item = u64> + use<> {
        let h2 = splitmix(h1) | 1;
        let bits = u128::from(self.bits);
        (0..self.hashes).map(move |i| {
            let h = h1.wrapping_add(i.wrapping_mul(h2));
            ((u128::from(h) * bits) >> 64) as u64
        })
    }

    /// Sets the bits of an id of hash `h1`. It is counted only if it set
    /// one that was not set: an id added again (read in the tail and again
    /// in history by a build that a merge overtook, or added by the writer
    /// while a build read it) counts once, and so does every id history
    /// holds, but for the rare new one whose bits all happened to be set.
    fn insert(&self, h1: u64) {
        let mut new = false;
        for bit in self.positions(h1) {
            let mask = 1 << (bit % 64);
            let was = self.words[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
            new |= was & mask == 0;
        }
        if new {
            self.added.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn may_contain(&self, h1: u64) -> bool {
        self.positions(h1).all(|bit| {
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
    /// The layers questions are answered from, oldest first; new ids go
    /// to the last. Empty until the first build.
    layers: Vec<Arc<Filter>>,
    /// The filter being built from history, if any.
    next: Option<Arc<Filter>>,
}

/// The message-ids history may hold, as far as a Bloom filter can tell.
#[derive(Default)]
pub struct KnownIds {
    filters: RwLock<Filters>,
    /// A build or a growth is under way.
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
        let h1 = hash(msgid);
        !filters.layers.is_empty() && !filters.layers.iter().any(|f| f.may_contain(h1))
    }

    /// How many message-ids the filter holds: history and its tail as they
    /// were when it was built, and every id added since, each once (ids
    /// forgotten since are still counted; a new id whose bits were all set
    /// already is not, ~1% of them when a layer is full). `None` until
    /// the first one is built.
    pub fn held(&self) -> Option<usize> {
        let filters = self.filters.read().ok()?;
        if filters.layers.is_empty() {
            return None;
        }
        Some(Self::sum_added(&filters.layers))
    }

    fn sum_added(layers: &[Arc<Filter>]) -> usize {
        layers.iter().map(|f| f.added.load(Ordering::Relaxed)).sum()
    }

    /// Adds ids the writer has just committed to history. Returns whether
    /// the newest layer is now fuller than it was sized for and no growth
    /// or build is under way (time to `grow`).
    pub fn add<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> bool {
        let Ok(filters) = self.filters.read() else {
            return false;
        };
        let newest = filters.layers.last();
        for id in ids {
            let h1 = hash(id);
            if let Some(f) = newest {
                f.insert(h1);
            }
            if let Some(f) = &filters.next {
                f.insert(h1);
            }
        }
        newest.is_some_and(|f| f.full()) && !self.building.load(Ordering::Acquire)
    }

    /// Builds a filter from history, sized for twice what it holds, and
    /// answers from it alone from then on. Does nothing if a build or a
    /// growth is running.
    pub async fn rebuild(self: Arc<Self>, store: Store) {
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        self.build_logged(&store, None).await;
        self.building.store(false, Ordering::Release);
    }

    /// Makes room once the newest layer is full: a new layer, or a build
    /// from history when the filter holds more than twice what history
    /// does or has `MAX_LAYERS` (see the module comment). Does nothing if
    /// a build or a growth is running.
    pub async fn grow(self: Arc<Self>, store: Store) {
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        match store.history_count().await {
            Ok(count) => {
                let (held, layers, newest) = match self.filters.read() {
                    Ok(f) => (
                        Self::sum_added(&f.layers),
                        f.layers.len(),
                        f.layers.last().map(|l| (l.capacity, l.bits_per_id)),
                    ),
                    Err(_) => (0, 0, None),
                };
                match newest {
                    Some((capacity, bits)) if held <= 2 * count as usize && layers < MAX_LAYERS => {
                        self.add_layer(2 * capacity, bits + MORE_BITS_PER_LAYER)
                            .await
                    }
                    _ => self.build_logged(&store, Some(count as usize)).await,
                }
            }
            Err(e) => warn!("counting history to grow the message-id filter: {e}"),
        }
        self.building.store(false, Ordering::Release);
    }

    /// Adds a layer for `capacity` more ids. Its memory is taken and
    /// cleared on a blocking thread: tens of MiB on a large server.
    async fn add_layer(&self, capacity: usize, bits_per_id: usize) {
        let made =
            tokio::task::spawn_blocking(move || Filter::with_capacity(capacity, bits_per_id)).await;
        let Ok(layer) = made else {
            warn!("the message-id filter could not grow");
            return;
        };
        let Ok(mut filters) = self.filters.write() else {
            return;
        };
        filters.layers.push(Arc::new(layer));
        let layers = &filters.layers;
        info!(
            layers = layers.len(),
            ids = Self::sum_added(layers),
            capacity = layers.iter().map(|f| f.capacity).sum::<usize>(),
            kib = layers.iter().map(|f| f.bytes()).sum::<usize>() / 1024,
            "message-id filter grown"
        );
    }

    /// Builds from history (see `build`), and logs how it went.
    async fn build_logged(&self, store: &Store, count: Option<usize>) {
        let started = std::time::Instant::now();
        match self.build(store, count).await {
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

    /// Builds a filter from history, sized for twice the `count` ids it
    /// holds (counted here when not given), and answers from it alone.
    async fn build(
        &self,
        store: &Store,
        count: Option<usize>,
    ) -> Result<(usize, usize), crate::store::StoreError> {
        let count = match count {
            Some(c) => c,
            None => store.history_count().await? as usize,
        };
        let filter = Arc::new(Filter::with_capacity(
            (2 * count).max(MIN_CAPACITY),
            BITS_PER_ID,
        ));
        if let Ok(mut filters) = self.filters.write() {
            filters.next = Some(filter.clone());
        }
        // Read history only after `next` is installed (see the module
        // comment), in chunks so no read holds a snapshot for long. The
        // tail first: an id leaves it only after history has it, so read
        // in this order none slips between the two (and the same holds
        // for history's two tables, `HistoryLevel::WALK`).
        for h in store.tail().map_ids(hash) {
            filter.insert(h);
        }
        for level in HistoryLevel::WALK {
            let mut after = String::new();
            loop {
                let chunk = store.history_ids_after(level, &after, 20_000).await?;
                let Some(last) = chunk.lines().inspect(|id| filter.insert(hash(id))).max() else {
                    break;
                };
                after = last.to_owned();
            }
        }
        let ids = filter.added.load(Ordering::Relaxed);
        let bytes = filter.bytes();
        if let Ok(mut filters) = self.filters.write()
            && let Some(built) = filters.next.take()
        {
            filters.layers = vec![built];
        }
        Ok((ids, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_forgets_an_id_and_rarely_imagines_one() {
        let f = Filter::with_capacity(50_000, BITS_PER_ID);
        for i in 0..50_000 {
            f.insert(hash(&format!("<{i}@known.example>")));
        }
        for i in 0..50_000 {
            assert!(
                f.may_contain(hash(&format!("<{i}@known.example>"))),
                "lost {i}"
            );
        }
        let false_positives = (0..100_000)
            .filter(|i| f.may_contain(hash(&format!("<{i}@new.example>"))))
            .count();
        // Sized for 10 bits an id, 7 hashes: about 1% (a little under,
        // since the bit count is rounded up to a power of two).
        assert!(false_positives < 2_000, "{false_positives} false positives");
    }

    #[test]
    fn answers_nothing_until_built_and_feeds_the_filter_being_built() {
        let known = KnownIds::default();
        assert!(!known.surely_new("<a@x>"), "no filter yet: ask history");
        let next = Arc::new(Filter::with_capacity(1000, BITS_PER_ID));
        known.filters.write().unwrap().next = Some(next.clone());
        known.add(["<during@build>"]);
        assert!(next.may_contain(hash("<during@build>")));
        {
            let mut f = known.filters.write().unwrap();
            f.layers = f.next.take().into_iter().collect();
        }
        assert!(known.surely_new("<a@x>"));
        assert!(!known.surely_new("<during@build>"));
    }

    /// A store whose history holds `<0@old.example>` to `<N-1@old.example>`.
    async fn store_with_history(dir: &std::path::Path, ids: i64) -> Store {
        let config = crate::config::StorageConfig {
            database: dir.join("t.db"),
            ..Default::default()
        };
        let (store, _) = Store::open(&config).await.expect("open");
        let url = format!("sqlite://{}", config.database.display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query(
            "INSERT INTO history (msgid, status) \
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1) \
             SELECT '<' || i || '@old.example>', 1 FROM n",
        )
        .bind(ids)
        .execute(&pool)
        .await
        .expect("seed history");
        pool.close().await;
        store
    }

    #[tokio::test]
    async fn is_built_from_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        // More than one chunk of the walk.
        let store = store_with_history(dir.path(), 45_000).await;
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

    #[tokio::test]
    async fn grown_layers_forget_nothing_and_rarely_imagine_an_id() {
        let known = KnownIds::default();
        known.filters.write().unwrap().layers =
            vec![Arc::new(Filter::with_capacity(10_000, BITS_PER_ID))];
        let (mut capacity, mut bits, mut next) = (10_000, BITS_PER_ID, 0);
        for layer in 1..=4 {
            // A few of them set no new bit and are not counted.
            let ids: Vec<String> = (next..next + capacity + capacity / 20)
                .map(|i| format!("<{i}@known.example>"))
                .collect();
            next += ids.len();
            assert!(
                known.add(ids.iter().map(String::as_str)),
                "layer {layer} full"
            );
            capacity *= 2;
            bits += MORE_BITS_PER_LAYER;
            known.add_layer(capacity, bits).await;
        }
        assert_eq!(known.filters.read().unwrap().layers.len(), 5);
        assert!((0..next).all(|i| !known.surely_new(&format!("<{i}@known.example>"))));
        let held = known.held().unwrap();
        assert!(held <= next && held > next * 98 / 100, "{held} of {next}");
        // Four full layers: ~0.8% + 0.5% + 0.3% + 0.2%, a little more as
        // each holds 5% more than it was sized for (2.4% here).
        let false_positives = (0..100_000)
            .filter(|i| !known.surely_new(&format!("<{i}@new.example>")))
            .count();
        assert!(false_positives < 3_000, "{false_positives} false positives");
    }

    #[tokio::test]
    async fn grows_by_a_layer_unless_it_holds_much_that_history_has_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_history(dir.path(), 30_000).await;
        let known = Arc::new(KnownIds::default());
        known.clone().rebuild(store.clone()).await;
        assert_eq!(known.held(), Some(30_000));
        let layers = |k: &KnownIds| k.filters.read().unwrap().layers.len();

        // History holds what the filter does: a layer twice the newest.
        known.clone().grow(store.clone()).await;
        assert_eq!(layers(&known), 2);
        {
            let filters = known.filters.read().unwrap();
            let (first, second) = (&filters.layers[0], &filters.layers[1]);
            assert_eq!(second.capacity, 2 * first.capacity);
            assert_eq!(second.bits_per_id, BITS_PER_ID + MORE_BITS_PER_LAYER);
        }
        let added: Vec<String> = (0..20_000).map(|i| format!("<{i}@gone.example>")).collect();
        known.add(added.iter().map(String::as_str));
        assert!(!known.surely_new("<7@gone.example>"), "in the new layer");
        assert!(!known.surely_new("<7@old.example>"), "in the first layer");

        // Ids history does not hold (forgotten, here never stored): once
        // they are more than half of what the filter holds, it is built
        // from history again, as one layer.
        let forgotten: Vec<String> = (0..50_000).map(|i| format!("<{i}@lost.example>")).collect();
        known.add(forgotten.iter().map(String::as_str));
        known.clone().grow(store.clone()).await;
        assert_eq!(layers(&known), 1);
        assert_eq!(known.held(), Some(30_000));
        assert!(!known.surely_new("<7@old.example>"));
        let lost = (0..50_000)
            .filter(|i| !known.surely_new(&format!("<{i}@lost.example>")))
            .count();
        assert!(lost < 1_000, "{lost} forgotten ids still held");
        store.close().await;
    }

    #[test]
    fn counts_an_id_added_twice_once() {
        let f = Filter::with_capacity(1000, BITS_PER_ID);
        for id in ["<a@x>", "<b@x>", "<a@x>", "<c@x>", "<b@x>"] {
            f.insert(hash(id));
        }
        assert_eq!(f.added.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn reports_when_full() {
        let known = KnownIds::default();
        known.filters.write().unwrap().layers =
            vec![Arc::new(Filter::with_capacity(3, BITS_PER_ID))];
        assert!(!known.add(["<1@x>", "<2@x>", "<3@x>"]));
        assert!(known.add(["<4@x>"]));
        // Once a rebuild is under way, the writer is not asked again.
        known.building.store(true, Ordering::Release);
        assert!(!known.add(["<5@x>"]));
    }
}
