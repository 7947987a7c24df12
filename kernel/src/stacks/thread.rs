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
//!
//! A `THREAD_SIZE` stack may be *dynamic* (`stacks::dynamic`): only its top
//! page backed at first, the rest mapped by the faults that touch them.
//! Everything here that reads a stack reads only its backed part.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::layout::{
    DYNAMIC_CACHE_KEEP_PAGES, MAX_THREAD_STACKS, PAGE_SIZE, STACK_END_MAGIC, STACK_LIMIT_ALIGN, STACK_LIMIT_MAX,
    STACK_LIMIT_MIN, THREAD_SIZE, THREAD_STACK_SIZES,
};
use crate::mm::vmalloc::{self, Guards};
use crate::mm::vmap::VmapError;
use crate::stacks::{dynamic, usage};

/// Guard page below (catches overflow); one unmapped page above as a gap.
const THREAD_STACK_GUARDS: Guards = Guards { below: PAGE_SIZE, above: PAGE_SIZE };

/// One thread's stack: usable `[bottom, top)`, inside the vmap allocation
/// `[base, base + alloc_size)`. Without a limit `bottom == base`; with one,
/// the page just below `bottom` is the unmapped limit guard and
/// `top - bottom` is the limit. A dynamic stack has no limit and is backed
/// from some page up to its top.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadStack {
    pub bottom: u64,
    top: u64,
    base: u64,
    alloc_size: u64,
    dynamic: bool,
}

/// The registry's limit field of a dynamic stack (no real limit is this
/// large: `STACK_LIMIT_MAX` / 16 is below it).
const DYNAMIC_MARK: u64 = 0x3ff;
const _: () = assert!(STACK_LIMIT_MAX / STACK_LIMIT_ALIGN < DYNAMIC_MARK);

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
        ThreadStack { bottom: base, top: base + size, base, alloc_size: size, dynamic: false }
    }

    fn grows(base: u64, size: u64) -> ThreadStack {
        ThreadStack { dynamic: true, ..ThreadStack::plain(base, size) }
    }

    /// `limit` bytes under the top of `THREAD_SIZE` at `base`: the top is
    /// lowered by less than a page so that the usable bottom is page-aligned
    /// and the page below it can be the guard.
    fn limited(base: u64, limit: u64) -> ThreadStack {
        let bottom = base + THREAD_SIZE - limit.next_multiple_of(PAGE_SIZE);
        ThreadStack { bottom, top: bottom + limit, base, alloc_size: THREAD_SIZE, dynamic: false }
    }

    fn pack(&self) -> u64 {
        let class = size_class(self.alloc_size).expect("stack sizes come from THREAD_STACK_SIZES") as u64;
        let limit = if self.dynamic { DYNAMIC_MARK } else { self.limit().map_or(0, |l| l / STACK_LIMIT_ALIGN) };
        self.base | class | limit << 2
    }

    fn unpack(word: u64) -> ThreadStack {
        let base = word & !(PAGE_SIZE - 1);
        let size = THREAD_STACK_SIZES[(word & 3) as usize];
        match (word >> 2) & 0x3ff {
            0 => ThreadStack::plain(base, size),
            DYNAMIC_MARK => ThreadStack::grows(base, size),
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

    /// It grows on demand (`stacks::dynamic`).
    pub fn dynamic(&self) -> bool {
        self.dynamic
    }

    /// Where its backed part starts: the bottom, unless it is dynamic.
    pub fn resident_bottom(&self) -> u64 {
        if self.dynamic {
            dynamic::resident_bottom(self.bottom, self.top)
        } else {
            self.bottom
        }
    }

    /// Pages backed by memory now.
    pub fn resident_pages(&self) -> u64 {
        if self.dynamic {
            dynamic::resident_pages(self.bottom, self.top)
        } else {
            self.size().div_ceil(PAGE_SIZE)
        }
    }

    /// The backed words, from `resident_bottom` to the top.
    fn words(&self) -> &[u64] {
        let from = self.resident_bottom();
        // SAFETY: a live thread stack is mapped from its resident bottom to
        // the top (a dynamic one gains pages only below, and loses them
        // only when freed); reading it while its owner runs only races on
        // values we use as statistics.
        unsafe { core::slice::from_raw_parts(from as *const u64, ((self.top - from) / 8) as usize) }
    }

    /// The end magic is intact (Linux `task_stack_end_corrupted` is the
    /// negation); a dynamic stack whose lowest page is not backed has
    /// nothing there to corrupt.
    #[inline(always)]
    pub fn end_magic_ok(&self) -> bool {
        if self.dynamic && !crate::mm::paging::present(self.bottom) {
            return true;
        }
        // SAFETY: the lowest word of a mapped stack.
        unsafe { (self.bottom as *const u64).read_volatile() == STACK_END_MAGIC }
    }

    /// Bytes never used (Linux `stack_not_used`); pages not backed were
    /// never used.
    pub fn not_used(&self) -> u64 {
        let words = self.words();
        let unbacked = (self.top - self.bottom) - words.len() as u64 * 8;
        match unbacked {
            0 => usage::stack_not_used(words),
            // The magic word is in the first page, not backed.
            _ => unbacked - 8 + usage::untouched(words),
        }
    }

    /// One scan above the end magic: bytes never used, and bytes still
    /// zero (both counted from the word above the magic; pages not backed
    /// count as both).
    pub fn scan(&self) -> usage::Scan {
        let words = self.words();
        let unbacked = (self.top - self.bottom) - words.len() as u64 * 8;
        match unbacked {
            0 => usage::scan(words.get(1..).unwrap_or(&[])),
            _ => {
                let s = usage::scan(words);
                usage::Scan { zero: unbacked - 8 + s.zero, untouched: unbacked - 8 + s.untouched }
            }
        }
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
    alloc_stack(size, limit, false)
}

/// A dynamic `THREAD_SIZE` stack (`stacks::dynamic`; it must be armed).
pub fn alloc_dynamic() -> Result<ThreadStack, VmapError> {
    alloc_stack(THREAD_SIZE, None, true)
}

fn alloc_stack(size: u64, limit: Option<u64>, grows: bool) -> Result<ThreadStack, VmapError> {
    let class = size_class(size).ok_or(VmapError::BadRequest)?;
    if limit.is_some_and(|l| size != THREAD_SIZE || !limit_valid(l)) {
        return Err(VmapError::BadRequest);
    }
    if grows && (limit.is_some() || size != THREAD_SIZE || !dynamic::armed()) {
        return Err(VmapError::BadRequest);
    }
    let cached = if limit.is_none() { take_cached_for(class, grows) } else { None };
    let stack = match cached {
        Some(slot) => {
            let base = slot & !(CLEAN_MASK | PARTIAL);
            let (clean, partial) = ((slot & CLEAN_MASK) * CLEAN_UNIT, slot & PARTIAL != 0);
            if partial && !grows && !dynamic::populate(base, base + size) {
                // Out of memory backing it: it stays a dynamic stack.
                release(ThreadStack::grows(base, size), slot & CLEAN_MASK, 0);
                return Err(VmapError::OutOfMemory);
            }
            // Only what the last thread wrote: below `clean` it is all zero
            // or not backed (the end magic is rewritten below).
            // SAFETY: a cached stack is mapped above `clean` and owned by nobody.
            unsafe { crate::arch::cpu::clear_words((base + clean) as *mut u8, (size - clean) as usize) };
            if grows {
                ThreadStack::grows(base, size)
            } else {
                if partial {
                    dynamic::destroyed();
                }
                ThreadStack::plain(base, size)
            }
        }
        None => {
            let r = vmalloc::vmalloc_guarded(size, size, THREAD_STACK_GUARDS)?;
            match (limit, grows) {
                (None, false) => ThreadStack::plain(r.start, size),
                (None, true) => {
                    // Fresh pages no other CPU has touched.
                    dynamic::unback_fresh(r.start, r.start + size, dynamic::initial_pages() * PAGE_SIZE);
                    dynamic::created();
                    ThreadStack::grows(r.start, size)
                }
                (Some(l), _) => {
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
    // A dynamic stack's lowest page gets the magic when it is mapped.
    if !stack.dynamic || crate::mm::paging::present(stack.bottom) {
        // SAFETY: the lowest word of the stack we now own, backed.
        unsafe { (stack.bottom as *mut u64).write_volatile(STACK_END_MAGIC) };
    }
    if !register(stack.pack()) {
        // Not an assertion: user space can ask for threads until this fills.
        release(stack, 0, 0);
        return Err(VmapError::TooManyStacks);
    }
    Ok(stack)
}

/// Give a stack back: into this CPU's cache, or unmapped if the cache is full.
pub fn free(stack: ThreadStack) {
    unregister(stack.pack());
    release(stack, 0, 0);
}

/// `free`, for a stack no longer in use that was just scanned (`scan`):
/// if cached, its next user clears only what lies above its zero part.
pub fn free_scanned(stack: ThreadStack, scan: usage::Scan) {
    unregister(stack.pack());
    // The zero part starts above the end magic's word.
    release(stack, (8 + scan.zero) / CLEAN_UNIT, 8 + scan.untouched);
}

/// `clean`: `CLEAN_UNIT`s above the base known to be zero; `unused`: bytes
/// above the base its last thread never used (zero, or erased by
/// STACKLEAK). A dynamic stack is trimmed first (`dynamic::trim`): it
/// keeps the pages its last thread used, at most
/// `DYNAMIC_CACHE_KEEP_PAGES`; the rest go back.
fn release(stack: ThreadStack, clean: u64, unused: u64) {
    let class = size_class(stack.alloc_size).expect("stack sizes come from THREAD_STACK_SIZES");
    let (base, top) = (stack.base, stack.base + stack.alloc_size);
    let mut slot = base | clean;
    if stack.dynamic {
        dynamic::note_freed(stack.resident_pages());
        let used_from = (base + unused.max(clean * CLEAN_UNIT)) & !(PAGE_SIZE - 1);
        // (At least what a new one starts with.)
        let keep = DYNAMIC_CACHE_KEEP_PAGES.max(dynamic::initial_pages());
        let keep_from = used_from.max(top - keep * PAGE_SIZE);
        dynamic::trim(base, top, keep_from);
        // Below `keep_from` nothing is backed: clean for the next user.
        slot = base | clean.max((keep_from - base) / CLEAN_UNIT) | PARTIAL;
    }
    if stack.limit().is_some() || !put_cached(class, slot) {
        unmap_stack(slot);
    }
}

/// Give a stack's range back to the vmap area (`slot`: its base with the
/// cache's low bits).
fn unmap_stack(slot: u64) {
    let base = slot & !(CLEAN_MASK | PARTIAL);
    if slot & PARTIAL != 0 {
        let size = THREAD_SIZE;
        dynamic::unmark(base, base + size);
        dynamic::destroyed();
    }
    // vfree unmaps what is mapped: the limit's hole is simply skipped.
    vmalloc::vfree(base).expect("thread stacks come from the vmap area");
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

mod cache;
pub mod ktests;

pub use cache::{cached, cached_on, cached_pages_on, drain_cache};
use cache::{put_cached, take_cached_for, CLEAN_MASK, CLEAN_UNIT, PARTIAL};
