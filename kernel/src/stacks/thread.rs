//! Thread stacks: `THREAD_SIZE` bytes from the vmap area, aligned to
//! `THREAD_SIZE`, an unmapped guard page below and a gap above, with
//! `STACK_END_MAGIC` in the lowest word (Linux `alloc_thread_stack_node` with
//! `CONFIG_VMAP_STACK`).
//!
//! Freed stacks go to a per-CPU cache of `NR_CACHED_STACKS` first (vmap and
//! unmap are not free); a reused stack is zeroed, so usage accounting and a
//! new thread never see an old one's data.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu::this_cpu;
use crate::mm::vmalloc::{self, Guards};
use crate::mm::vmap::VmapError;
use crate::stacks::layout::{MAX_THREAD_STACKS, PAGE_SIZE, STACK_END_MAGIC, THREAD_SIZE};
use crate::stacks::usage;

/// Guard page below (catches overflow); one unmapped page above as a gap.
const THREAD_STACK_GUARDS: Guards = Guards { below: PAGE_SIZE, above: PAGE_SIZE };

/// One thread's stack: `[bottom, bottom + THREAD_SIZE)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadStack {
    pub bottom: u64,
}

/// Bottoms of the stacks in use, so `stack_info` can name any address
/// without locks (it runs in the #DF handler).
static LIVE: [AtomicU64; MAX_THREAD_STACKS] = [const { AtomicU64::new(0) }; MAX_THREAD_STACKS];

impl ThreadStack {
    pub fn top(&self) -> u64 {
        self.bottom + THREAD_SIZE
    }

    fn words(&self) -> &[u64] {
        // SAFETY: a live thread stack is mapped for its whole size; reading
        // it while its owner runs only races on values we use as statistics.
        unsafe { core::slice::from_raw_parts(self.bottom as *const u64, (THREAD_SIZE / 8) as usize) }
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
}

/// A stack for a new thread: from this CPU's cache if it has one, else the vmap area.
pub fn alloc() -> Result<ThreadStack, VmapError> {
    let stack = match take_cached() {
        Some(bottom) => {
            // SAFETY: a cached stack is mapped and owned by nobody.
            unsafe { core::ptr::write_bytes(bottom as *mut u8, 0, THREAD_SIZE as usize) };
            ThreadStack { bottom }
        }
        None => {
            let r = vmalloc::vmalloc_guarded(THREAD_SIZE, THREAD_SIZE, THREAD_STACK_GUARDS)?;
            ThreadStack { bottom: r.start }
        }
    };
    // SAFETY: the lowest word of the stack we now own.
    unsafe { (stack.bottom as *mut u64).write_volatile(STACK_END_MAGIC) };
    register(stack.bottom);
    Ok(stack)
}

/// Give a stack back: into this CPU's cache, or unmapped if the cache is full.
pub fn free(stack: ThreadStack) {
    unregister(stack.bottom);
    if !put_cached(stack.bottom) {
        vmalloc::vfree(stack.bottom).expect("thread stacks come from the vmap area");
    }
}

fn take_cached() -> Option<u64> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        this_cpu().stack_cache.iter().find_map(|slot| {
            let b = slot.swap(0, Ordering::Relaxed);
            (b != 0).then_some(b)
        })
    })
}

fn put_cached(bottom: u64) -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        this_cpu()
            .stack_cache
            .iter()
            .any(|slot| slot.compare_exchange(0, bottom, Ordering::Relaxed, Ordering::Relaxed).is_ok())
    })
}

/// Unmap every stack in this CPU's cache (so vmap usage can be compared).
pub fn drain_cache() {
    while let Some(bottom) = take_cached() {
        vmalloc::vfree(bottom).expect("cached stacks come from the vmap area");
    }
}

/// Stacks in this CPU's cache.
pub fn cached() -> usize {
    this_cpu().stack_cache.iter().filter(|s| s.load(Ordering::Relaxed) != 0).count()
}

fn register(bottom: u64) {
    let slot = LIVE
        .iter()
        .find(|s| s.compare_exchange(0, bottom, Ordering::AcqRel, Ordering::Relaxed).is_ok());
    assert!(slot.is_some(), "more than MAX_THREAD_STACKS thread stacks");
}

fn unregister(bottom: u64) {
    if let Some(s) = LIVE.iter().find(|s| s.load(Ordering::Acquire) == bottom) {
        s.store(0, Ordering::Release);
    }
}

/// The live thread stack holding `addr`, or whose guard page holds it
/// (`(stack, true)`).
pub fn find(addr: u64) -> Option<(ThreadStack, bool)> {
    LIVE.iter().find_map(|s| {
        let bottom = s.load(Ordering::Acquire);
        if bottom == 0 {
            None
        } else if (bottom..bottom + THREAD_SIZE).contains(&addr) {
            Some((ThreadStack { bottom }, false))
        } else if (bottom - PAGE_SIZE..bottom).contains(&addr) {
            Some((ThreadStack { bottom }, true))
        } else {
            None
        }
    })
}
