//! Where the writer thread runs (`storage.pin_writer`).
//!
//! A disk with a single completion interrupt (virtio-blk with one queue,
//! as on the test VM) interrupts one CPU when a write or a cache flush is
//! done. A thread that waits in `fdatasync` on another CPU is then woken
//! by an interrupt between CPUs, which on a virtual machine costs tens of
//! microseconds, and a CPU that went idle while it waited costs as much to
//! wake again. Measured on the 2-core test VM, `fdatasync` of 16 KiB
//! (p50): from the interrupt's CPU 73-94 µs, from the other 130-145 µs;
//! from the interrupt's CPU kept busy meanwhile, 71-77 µs.
//!
//! So the writer, which syncs each lock-step article itself, and the sync
//! thread are pinned to the CPUs that take the disk's completion
//! interrupts, when those are fewer than the CPUs the server may use; and
//! while the writer waits in a sync, a thread of the lowest priority
//! (`SCHED_IDLE`) keeps that CPU from going idle (`KeepAwake`): it runs
//! only when nothing else on that CPU can, and any other thread preempts
//! it the moment it is woken. Where interrupts go is looked up again
//! every `RECHECK` (irqbalance moves them).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tracing::{debug, info, warn};

/// How often `auto` looks again at where the disk's interrupts go.
pub const RECHECK: Duration = Duration::from_secs(30);

/// A set of CPUs: bit i is CPU i. CPUs past 63 are never pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cpus(pub u64);

impl Cpus {
    /// Parses a kernel CPU list (`0-3,8`), as in `/proc/irq/N/
    /// effective_affinity_list` and the configuration. `None` if it is
    /// malformed or names a CPU past 63.
    pub fn parse_list(text: &str) -> Option<Cpus> {
        let mut set = 0u64;
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
                None => {
                    let n = part.trim().parse::<u32>().ok()?;
                    (n, n)
                }
            };
            if first > last || last > 63 {
                return None;
            }
            for cpu in first..=last {
                set |= 1 << cpu;
            }
        }
        Some(Cpus(set))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn count(self) -> u32 {
        self.0.count_ones()
    }

    fn intersect(self, other: Cpus) -> Cpus {
        Cpus(self.0 & other.0)
    }
}

impl std::fmt::Display for Cpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpus: Vec<String> = (0..64)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| i.to_string())
            .collect();
        f.write_str(&cpus.join(","))
    }
}

/// The CPUs the completion interrupts of the disk holding `path` go to:
/// the interrupts of the device behind its block device (its MSI vectors,
/// or its one line) that have fired at all, and each one's effective
/// affinity. `root` is where `/sys` and `/proc` are (`/` but in tests).
pub fn disk_cpus(root: &Path, path: &Path) -> Result<Cpus, String> {
    let dev = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .dev();
    let link = root.join(format!("sys/dev/block/{}", dev_name(dev)));
    let mut block = fs::canonicalize(&link).map_err(|e| format!("{}: {e}", link.display()))?;
    if block.join("partition").exists() {
        block.pop();
    }
    let irqs = device_irqs(&block)?;
    let fired = interrupt_counts(root)?;
    let mut cpus = Cpus::default();
    for irq in irqs
        .iter()
        .filter(|irq| fired.get(*irq).is_some_and(|&n| n > 0))
    {
        let dir = root.join(format!("proc/irq/{irq}"));
        let list = fs::read_to_string(dir.join("effective_affinity_list"))
            .or_else(|_| fs::read_to_string(dir.join("smp_affinity_list")))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let set = Cpus::parse_list(&list)
            .ok_or_else(|| format!("{}: not a CPU list: {list:?}", dir.display()))?;
        cpus.0 |= set.0;
    }
    if cpus.is_empty() {
        return Err(format!("{}: no interrupt has fired", block.display()));
    }
    Ok(cpus)
}

/// A device number as `/sys/dev/block` names it, `major:minor` (glibc's
/// encoding of `dev_t`).
fn dev_name(dev: u64) -> String {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    format!("{major}:{minor}")
}

/// The interrupts of the device behind a block device: the first
/// directory from its `device` upwards that has MSI vectors or an
/// interrupt line (virtio-blk's are on the PCI function above it).
fn device_irqs(block: &Path) -> Result<Vec<u32>, String> {
    let link = block.join("device");
    let mut dir = fs::canonicalize(&link).map_err(|e| format!("{}: {e}", link.display()))?;
    for _ in 0..4 {
        if let Ok(entries) = fs::read_dir(dir.join("msi_irqs")) {
            let irqs: Vec<u32> = entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            if !irqs.is_empty() {
                return Ok(irqs);
            }
        }
        if let Some(irq) = fs::read_to_string(dir.join("irq"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&irq| irq > 0)
        {
            return Ok(vec![irq]);
        }
        if !dir.pop() {
            break;
        }
    }
    Err(format!("{}: no interrupts found", block.display()))
}

/// Each numbered interrupt's count over all CPUs, from `/proc/interrupts`.
fn interrupt_counts(root: &Path) -> Result<HashMap<u32, u64>, String> {
    let file = root.join("proc/interrupts");
    let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let cpus = text
        .lines()
        .next()
        .map_or(0, |l| l.split_whitespace().count());
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (irq, rest) = line.split_once(':')?;
            let irq = irq.trim().parse().ok()?;
            let total = rest
                .split_whitespace()
                .take(cpus)
                .map_while(|n| n.parse::<u64>().ok())
                .sum();
            Some((irq, total))
        })
        .collect())
}

/// The CPUs the calling thread may run on.
pub fn allowed() -> io::Result<Cpus> {
    // SAFETY: a zeroed cpu_set_t is an empty set; the kernel writes at
    // most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut cpus = 0u64;
    for cpu in 0..64 {
        // SAFETY: `cpu` is within the set's size.
        if unsafe { libc::CPU_ISSET(cpu, &set) } {
            cpus |= 1 << cpu;
        }
    }
    Ok(Cpus(cpus))
}

/// Pins the calling thread to `cpus`.
fn pin_this_thread(cpus: Cpus) -> io::Result<()> {
    // SAFETY: as in `allowed`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in (0..64).filter(|i| cpus.0 & (1 << i) != 0) {
        // SAFETY: `cpu` is within the set's size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where the writer and the sync thread should run, shared with the task
/// that looks again (`recheck`). 0: anywhere the server may run.
#[derive(Clone)]
pub struct Placement {
    wanted: Arc<AtomicU64>,
    /// The CPUs the server could use at start, to go back to.
    allowed: Cpus,
}

impl Placement {
    /// `fixed`: CPUs from the configuration; else the disk's interrupts'
    /// CPUs (`auto`), if they are fewer than the allowed ones. `None` when
    /// the writer is not to be placed at all (`off`, or the allowed CPUs
    /// unknown).
    pub fn start(fixed: Option<Cpus>, database: &Path) -> Option<Placement> {
        let allowed = match allowed() {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => return None,
            Err(e) => {
                warn!("the writer is not pinned: the CPUs allowed are unknown: {e}");
                return None;
            }
        };
        let placement = Placement {
            wanted: Arc::default(),
            allowed,
        };
        match fixed {
            Some(cpus) => {
                let cpus = cpus.intersect(allowed);
                if cpus.is_empty() {
                    warn!("storage.pin_writer names no CPU the server may use; not pinned");
                } else {
                    placement.wanted.store(cpus.0, Ordering::Relaxed);
                    info!("the writer runs on CPU {cpus} (storage.pin_writer)");
                }
            }
            None => placement.look(database, true),
        }
        Some(placement)
    }

    /// Looks at where the disk's interrupts go and sets `wanted`.
    pub fn look(&self, database: &Path, first: bool) {
        let target = match disk_cpus(Path::new("/"), database) {
            Ok(cpus) => {
                let cpus = cpus.intersect(self.allowed);
                if cpus.is_empty() || cpus == self.allowed {
                    if first {
                        debug!(cpus = %cpus, "the disk's interrupts go to every CPU: writer not pinned");
                    }
                    Cpus::default()
                } else {
                    cpus
                }
            }
            Err(e) => {
                if first {
                    debug!("writer not pinned: where the disk's interrupts go is unknown: {e}");
                }
                Cpus::default()
            }
        };
        let before = self.wanted.swap(target.0, Ordering::Relaxed);
        if before != target.0 && !target.is_empty() {
            info!("the writer runs on CPU {target}, which takes the disk's interrupts");
        } else if before != target.0 {
            info!("the writer is no longer pinned: the disk's interrupts moved");
        }
    }

    /// Where the writer should run now; empty: anywhere.
    pub fn wanted(&self) -> Cpus {
        Cpus(self.wanted.load(Ordering::Relaxed))
    }
}

/// A thread's pinning, following its `Placement`.
pub struct Pinned {
    placement: Option<Placement>,
    applied: Cpus,
}

impl Pinned {
    pub fn new(placement: Option<Placement>) -> Pinned {
        let mut pinned = Pinned {
            placement,
            applied: Cpus::default(),
        };
        pinned.follow();
        pinned
    }

    /// Pins the calling thread where its placement now wants it, if that
    /// changed (one atomic load when it did not).
    pub fn follow(&mut self) {
        let Some(placement) = &self.placement else {
            return;
        };
        let wanted = placement.wanted();
        if wanted == self.applied {
            return;
        }
        let cpus = if wanted.is_empty() {
            placement.allowed
        } else {
            wanted
        };
        match pin_this_thread(cpus) {
            Ok(()) => self.applied = wanted,
            Err(e) => {
                warn!("pinning a thread to CPU {cpus}: {e}");
                // Not tried again until the placement changes.
                self.applied = wanted;
            }
        }
    }

    /// The one CPU this thread is pinned to, if it is pinned to one.
    pub fn single(&self) -> Option<Cpus> {
        (self.applied.count() == 1).then_some(self.applied)
    }
}

/// A thread of the lowest priority (`SCHED_IDLE`) that spins on the
/// writer's CPU while the writer waits in a sync, so that the CPU does not
/// go idle and the disk's interrupt finds it awake (see the module's
/// notes). It never takes the CPU from another thread: the scheduler runs
/// it only when nothing else there can run.
pub struct KeepAwake {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
    cpu: Cpus,
}

struct Shared {
    on: AtomicBool,
    stop: AtomicBool,
}

impl KeepAwake {
    /// Starts the thread on `cpu`.
    pub fn start(cpu: Cpus) -> io::Result<KeepAwake> {
        let shared = Arc::new(Shared {
            on: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::Builder::new().name("tidings-awake".into()).spawn({
            let shared = shared.clone();
            move || {
                let ready = pin_this_thread(cpu).and_then(|()| lowest_priority());
                let failed = ready.is_err();
                let _ = ready_tx.send(ready);
                if !failed {
                    keep_awake(&shared);
                }
            }
        })?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("keep-awake thread died")))?;
        Ok(KeepAwake {
            shared,
            thread: Some(thread),
            cpu,
        })
    }

    /// The CPU it keeps awake.
    pub fn cpu(&self) -> Cpus {
        self.cpu
    }

    /// Runs `sync`, the CPU kept busy while it waits.
    pub fn during<T>(&self, sync: impl FnOnce() -> T) -> T {
        self.shared.on.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        let result = sync();
        self.shared.on.store(false, Ordering::Release);
        result
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Makes the calling thread `SCHED_IDLE`.
fn lowest_priority() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn keep_awake(shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        if shared.on.load(Ordering::Acquire) {
            std::hint::spin_loop();
        } else {
            thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(Cpus::parse_list("1\n"), Some(Cpus(0b10)));
        assert_eq!(Cpus::parse_list("0-2,5"), Some(Cpus(0b100111)));
        assert_eq!(Cpus::parse_list(""), Some(Cpus(0)));
        assert_eq!(Cpus::parse_list("63"), Some(Cpus(1 << 63)));
        assert_eq!(Cpus::parse_list("64"), None);
        assert_eq!(Cpus::parse_list("3-1"), None);
        assert_eq!(Cpus::parse_list("x"), None);
        assert_eq!(Cpus(0b100111).to_string(), "0,1,2,5");
    }

    /// A made-up /sys and /proc where the disk holding `file` is a
    /// virtio-blk device on a PCI function with MSI vectors 35 (its
    /// configuration, fired once on CPU 0) and 36 (its requests, on CPU 1),
    /// and a partition of it.
    fn fake_root(file: &Path, partition: bool, counts: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        let dev = fs::metadata(file).expect("metadata").dev();
        let pci = r.join("sys/devices/pci0000:00/0000:00:02.0");
        let disk = pci.join("virtio1/block/vda");
        fs::create_dir_all(pci.join("msi_irqs")).expect("mkdir");
        for irq in ["35", "36"] {
            fs::write(pci.join("msi_irqs").join(irq), "msix\n").expect("write");
        }
        fs::create_dir_all(&disk).expect("mkdir");
        std::os::unix::fs::symlink("../../../virtio1", disk.join("device")).expect("symlink");
        let target = if partition {
            let part = disk.join("vda1");
            fs::create_dir_all(&part).expect("mkdir");
            fs::write(part.join("partition"), "1\n").expect("write");
            part
        } else {
            disk
        };
        fs::create_dir_all(r.join("sys/dev/block")).expect("mkdir");
        std::os::unix::fs::symlink(&target, r.join("sys/dev/block").join(dev_name(dev)))
            .expect("symlink");
        for (irq, cpus) in [("35", "0\n"), ("36", "1\n")] {
            let d = r.join("proc/irq").join(irq);
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join("effective_affinity_list"), cpus).expect("write");
        }
        fs::write(r.join("proc/interrupts"), counts).expect("write");
        root
    }

    const COUNTS: &str = "           CPU0       CPU1\n\
        35:          0          0 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config\n\
        36:          0     809279 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n\
        NMI:         0          0   Non-maskable interrupts\n";

    #[test]
    fn the_disk_s_cpus_are_those_of_the_interrupts_that_fired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("db");
        fs::write(&file, "x").expect("write");
        for partition in [false, true] {
            let root = fake_root(&file, partition, COUNTS);
            assert_eq!(disk_cpus(root.path(), &file), Ok(Cpus(0b10)), "{partition}");
        }
        // The configuration vector fired once too, on CPU 0: both count.
        let fired = COUNTS.replace("35:          0", "35:          1");
        let root = fake_root(&file, false, &fired);
        assert_eq!(disk_cpus(root.path(), &file), Ok(Cpus(0b11)));
        // Nothing fired yet: unknown.
        let none = COUNTS.replace("809279", "0");
        let root = fake_root(&file, false, &none);
        assert!(disk_cpus(root.path(), &file).is_err());
    }

    #[test]
    fn a_thread_is_pinned_where_its_placement_wants_and_back() {
        let all = allowed().expect("affinity");
        let first = Cpus(1 << all.0.trailing_zeros());
        let placement = Placement {
            wanted: Arc::new(AtomicU64::new(first.0)),
            allowed: all,
        };
        let p = placement.clone();
        let seen = thread::spawn(move || {
            let mut pinned = Pinned::new(Some(p.clone()));
            let pinned_at = allowed().expect("affinity");
            let single = pinned.single();
            p.wanted.store(0, Ordering::Relaxed);
            pinned.follow();
            (pinned_at, single, allowed().expect("affinity"))
        })
        .join()
        .expect("thread");
        assert_eq!(seen, (first, Some(first), all));
    }

    /// The keep-awake threads of this process: each one's scheduling
    /// policy (`/proc/.../stat` field 41) and the CPUs it may run on.
    fn keep_awake_threads() -> Vec<(u32, Cpus)> {
        let mut found = Vec::new();
        for task in fs::read_dir("/proc/self/task").expect("tasks").flatten() {
            let dir = task.path();
            let stat = fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let Some((name, rest)) = stat.split_once(") ") else {
                continue;
            };
            if !name.ends_with("(tidings-awake") {
                continue;
            }
            let policy = rest.split_whitespace().nth(38).and_then(|p| p.parse().ok());
            let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .and_then(Cpus::parse_list);
            if let (Some(policy), Some(cpus)) = (policy, cpus) {
                found.push((policy, cpus));
            }
        }
        found
    }

    #[test]
    fn keep_awake_runs_at_the_lowest_priority_on_its_cpu_and_stops() {
        let all = allowed().expect("affinity");
        let first = Cpus(1 << all.0.trailing_zeros());
        let awake = KeepAwake::start(first).expect("keep-awake thread");
        assert_eq!(awake.cpu(), first);
        let idle = u32::try_from(libc::SCHED_IDLE).expect("policy");
        assert_eq!(keep_awake_threads(), vec![(idle, first)]);
        assert_eq!(awake.during(|| 7), 7);
        drop(awake);
        assert_eq!(keep_awake_threads(), Vec::new());
    }
}
