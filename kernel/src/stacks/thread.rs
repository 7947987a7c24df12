//! Thread stacks: from the vmap area, aligned to their size, an unmapped
//! guard page below and a gap above, with `STACK_END_MAGIC` in the lowest
//! word (Linux `alloc_thread_stack_node` with `CONFIG_VMAP_STACK`).
//!
//! Most are `THREAD_SIZE`; a thread may get any of `THREAD_STACK_SIZES`
//! (Tim Bird's mixed stack sizes), and a `THREAD_SIZE` stack may carry a
//! *limit* (Sony's patches): one page inside it is unmapped so that only
//! `limit` bytes lie between its top and that guard — overflowing them is
//! a hard fault, reported as the limit it is.
//!
//! Freed stacks go to a per-CPU cache of `NR_CACHED_STACKS` per size first
//! (vmap and unmap are not free); a reused stack is zeroed, so usage
//! accounting and a new thread never see an old one's data — only the part
//! above what the scan at reaping found still zero (`free_scanned`), the
//! whole stack otherwise. Limited stacks are never cached (their hole
//! would have to be filled again).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu::this_cpu;
use crate::layout::{
    MAX_THREAD_STACKS, PAGE_SIZE, STACK_END_MAGIC, STACK_LIMIT_ALIGN, STACK_LIMIT_MAX, STACK_LIMIT_MIN, THREAD_SIZE,
    THREAD_STACK_SIZES,
};
use crate::mm::vmalloc::{self, Guards};
use crate::mm::vmap::VmapError;
use crate::stacks::usage;

crate::define_per_cpu! {
    /// Freed thread stacks kept for reuse on this CPU, per size of
    /// `THREAD_STACK_SIZES` (0 = empty slot): the base, and in the low
    /// bits (`CLEAN_MASK`) how many `CLEAN_UNIT`s above it are still zero.
    pub static STACK_CACHE: [[core::sync::atomic::AtomicU64; crate::layout::NR_CACHED_STACKS]; crate::layout::THREAD_STACK_SIZES.len()] = [const { [const { core::sync::atomic::AtomicU64::new(0) }; crate::layout::NR_CACHED_STACKS] }; crate::layout::THREAD_STACK_SIZES.len()];
}

/// A cached stack's clean part, counted in 64-byte units in the low bits
/// of its slot (a base is page-aligned): up to 256 KiB.
const CLEAN_UNIT: u64 = 64;
const CLEAN_MASK: u64 = PAGE_SIZE - 1;
const _: () = assert!(CLEAN_MASK * CLEAN_UNIT >= THREAD_STACK_SIZES[THREAD_STACK_SIZES.len() - 1]);

/// Guard page below (catches overflow); one unmapped page above as a gap.
const THREAD_STACK_GUARDS: Guards = Guards { below: PAGE_SIZE, above: PAGE_SIZE };

/// One thread's stack: usable `[bottom, top)`, inside the vmap allocation
/// `[base, base + alloc_size)`. Without a limit `bottom == base`; with one,
/// the page just below `bottom` is the unmapped limit guard and
/// `top - bottom` is the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadStack {
    pub bottom: u64,
    top: u64,
    base: u64,
    alloc_size: u64,
}

/// The stacks in use, so `stack_info` can name any address without locks
/// (it runs in the #DF handler). Each entry packs a stack into one word:
/// its page-aligned base, the index of its size in `THREAD_STACK_SIZES`
/// (bits 0–1) and its limit / 16 (bits 2–11, 0 = none).
static LIVE: [AtomicU64; MAX_THREAD_STACKS] = [const { AtomicU64::new(0) }; MAX_THREAD_STACKS];

fn size_class(size: u64) -> Option<usize> {
    THREAD_STACK_SIZES.iter().position(|&s| s == size)
}

/// Whether `limit` can be placed inside a `THREAD_SIZE` stack.
pub fn limit_valid(limit: u64) -> bool {
    (STACK_LIMIT_MIN..=STACK_LIMIT_MAX).contains(&limit) && limit.is_multiple_of(STACK_LIMIT_ALIGN)
}

impl ThreadStack {
    fn plain(base: u64, size: u64) -> ThreadStack {
        ThreadStack { bottom: base, top: base + size, base, alloc_size: size }
    }

    /// `limit` bytes under the top of `THREAD_SIZE` at `base`: the top is
    /// lowered by less than a page so that the usable bottom is page-aligned
    /// and the page below it can be the guard.
    fn limited(base: u64, limit: u64) -> ThreadStack {
        let bottom = base + THREAD_SIZE - limit.next_multiple_of(PAGE_SIZE);
        ThreadStack { bottom, top: bottom + limit, base, alloc_size: THREAD_SIZE }
    }

    fn pack(&self) -> u64 {
        let class = size_class(self.alloc_size).expect("stack sizes come from THREAD_STACK_SIZES") as u64;
        self.base | class | self.limit().map_or(0, |l| l / STACK_LIMIT_ALIGN) << 2
    }

    fn unpack(word: u64) -> ThreadStack {
        let base = word & !(PAGE_SIZE - 1);
        let size = THREAD_STACK_SIZES[(word & 3) as usize];
        match (word >> 2) & 0x3ff {
            0 => ThreadStack::plain(base, size),
            l => ThreadStack::limited(base, l * STACK_LIMIT_ALIGN),
        }
    }

    /// One past the highest byte: the thread's initial RSP.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Bytes the thread may use.
    pub fn size(&self) -> u64 {
        self.top - self.bottom
    }

    /// The stack limit placed in it, if any.
    pub fn limit(&self) -> Option<u64> {
        (self.bottom != self.base).then(|| self.size())
    }

    fn words(&self) -> &[u64] {
        // SAFETY: a live thread stack is mapped from bottom to top; reading
        // it while its owner runs only races on values we use as statistics.
        unsafe { core::slice::from_raw_parts(self.bottom as *const u64, (self.size() / 8) as usize) }
    }

    /// The end magic is intact (Linux `task_stack_end_corrupted` is the negation).
    pub fn end_magic_ok(&self) -> bool {
        // SAFETY: the lowest word of a mapped stack.
        unsafe { (self.bottom as *const u64).read_volatile() == STACK_END_MAGIC }
    }

    /// Bytes never used (Linux `stack_not_used`).
    pub fn not_used(&self) -> u64 {
        usage::stack_not_used(self.words())
    }

    /// One scan above the end magic: bytes never used, and bytes still
    /// zero (both counted from the word above the magic).
    pub fn scan(&self) -> usage::Scan {
        usage::scan(self.words().get(1..).unwrap_or(&[]))
    }
}

/// The boot-time default stack limit (`stack-limit-default`; 0: none).
static DEFAULT_LIMIT: AtomicU64 = AtomicU64::new(0);

/// The limit every new `THREAD_SIZE` thread gets unless told otherwise.
pub fn default_limit() -> Option<u64> {
    Some(DEFAULT_LIMIT.load(Ordering::Relaxed)).filter(|&l| l != 0)
}

/// Set (or with None clear) the default limit; it must be valid.
pub fn set_default_limit(limit: Option<u64>) {
    assert!(limit.is_none_or(limit_valid), "checked by the caller");
    DEFAULT_LIMIT.store(limit.unwrap_or(0), Ordering::Relaxed);
}

/// A `THREAD_SIZE` stack for a new thread.
pub fn alloc() -> Result<ThreadStack, VmapError> {
    alloc_sized(THREAD_SIZE, None)
}

/// A stack of `size` (one of `THREAD_STACK_SIZES`), or a `THREAD_SIZE`
/// stack with `limit` bytes usable: from this CPU's cache if it has one of
/// that size, else the vmap area.
pub fn alloc_sized(size: u64, limit: Option<u64>) -> Result<ThreadStack, VmapError> {
    let class = size_class(size).ok_or(VmapError::BadRequest)?;
    if limit.is_some_and(|l| size != THREAD_SIZE || !limit_valid(l)) {
        return Err(VmapError::BadRequest);
    }
    let cached = if limit.is_none() { take_cached(class) } else { None };
    let stack = match cached {
        Some(slot) => {
            let (base, clean) = (slot & !CLEAN_MASK, (slot & CLEAN_MASK) * CLEAN_UNIT);
            // Only what the last thread wrote: below `clean` it is all zero
            // (the end magic is rewritten below).
            // SAFETY: a cached stack is mapped and owned by nobody.
            unsafe { crate::arch::cpu::clear_words((base + clean) as *mut u8, (size - clean) as usize) };
            ThreadStack::plain(base, size)
        }
        None => {
            let r = vmalloc::vmalloc_guarded(size, size, THREAD_STACK_GUARDS)?;
            match limit {
                None => ThreadStack::plain(r.start, size),
                Some(l) => {
                    let s = ThreadStack::limited(r.start, l);
                    // The limit's guard: fresh pages no other CPU has
                    // touched, so this CPU's flush (in `unmap`) suffices.
                    let frame = crate::mm::paging::unmap(s.bottom - PAGE_SIZE).expect("vmalloc mapped it");
                    crate::mm::phys::free_frame(frame).expect("mapped frames come from phys");
                    s
                }
            }
        }
    };
    // SAFETY: the lowest word of the stack we now own.
    unsafe { (stack.bottom as *mut u64).write_volatile(STACK_END_MAGIC) };
    if !register(stack.pack()) {
        // Not an assertion: user space can ask for threads until this fills.
        release(stack, 0);
        return Err(VmapError::TooManyStacks);
    }
    Ok(stack)
}

/// Give a stack back: into this CPU's cache, or unmapped if the cache is full.
pub fn free(stack: ThreadStack) {
    unregister(stack.pack());
    release(stack, 0);
}

/// `free`, for a stack no longer in use that was just scanned (`scan`):
/// if cached, its next user clears only what lies above its zero part.
pub fn free_scanned(stack: ThreadStack, scan: usage::Scan) {
    unregister(stack.pack());
    // The zero part starts above the end magic's word.
    release(stack, (8 + scan.zero) / CLEAN_UNIT);
}

/// `clean`: `CLEAN_UNIT`s above the base known to be zero.
fn release(stack: ThreadStack, clean: u64) {
    let class = size_class(stack.alloc_size).expect("stack sizes come from THREAD_STACK_SIZES");
    if stack.limit().is_some() || !put_cached(class, stack.base | clean) {
        // vfree unmaps what is mapped: the limit's hole is simply skipped.
        vmalloc::vfree(stack.base).expect("thread stacks come from the vmap area");
    }
}

fn take_cached(class: usize) -> Option<u64> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        crate::stacks::thread::STACK_CACHE.this()[class].iter().find_map(|slot| {
            let b = slot.swap(0, Ordering::Relaxed);
            (b != 0).then_some(b)
        })
    })
}

fn put_cached(class: usize, base: u64) -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        crate::stacks::thread::STACK_CACHE.this()[class]
            .iter()
            .any(|slot| slot.compare_exchange(0, base, Ordering::Relaxed, Ordering::Relaxed).is_ok())
    })
}

/// Unmap every stack in this CPU's cache (so vmap usage can be compared).
pub fn drain_cache() {
    for class in 0..THREAD_STACK_SIZES.len() {
        while let Some(slot) = take_cached(class) {
            vmalloc::vfree(slot & !CLEAN_MASK).expect("cached stacks come from the vmap area");
        }
    }
}

/// Stacks in this CPU's cache.
pub fn cached() -> usize {
    cached_on(this_cpu().id())
}

/// Stacks in `cpu`'s cache (they hold their frames until reused).
pub fn cached_on(cpu: usize) -> usize {
    cached_pages_on(cpu).0
}

/// Stacks in `cpu`'s cache and the pages they hold.
pub fn cached_pages_on(cpu: usize) -> (usize, u64) {
    let cache = &crate::stacks::thread::STACK_CACHE.of(cpu);
    let mut n = (0, 0);
    for (class, slots) in cache.iter().enumerate() {
        let k = slots.iter().filter(|s| s.load(Ordering::Relaxed) != 0).count();
        n.0 += k;
        n.1 += k as u64 * THREAD_STACK_SIZES[class] / PAGE_SIZE;
    }
    n
}

/// Record a live stack; false if the registry is full.
fn register(word: u64) -> bool {
    LIVE.iter().any(|s| s.compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed).is_ok())
}

fn unregister(word: u64) {
    if let Some(s) = LIVE.iter().find(|s| s.load(Ordering::Acquire) == word) {
        s.store(0, Ordering::Release);
    }
}

/// The live thread stack holding `addr`, or whose guard page holds it
/// (`(stack, true)`; for a limited stack, the limit's guard).
pub fn find(addr: u64) -> Option<(ThreadStack, bool)> {
    LIVE.iter().find_map(|s| {
        let word = s.load(Ordering::Acquire);
        if word == 0 {
            return None;
        }
        let stack = ThreadStack::unpack(word);
        if (stack.bottom..stack.top).contains(&addr) {
            Some((stack, false))
        } else if (stack.bottom - PAGE_SIZE..stack.bottom).contains(&addr) {
            Some((stack, true))
        } else {
            None
        }
    })
}

pub mod ktests;
