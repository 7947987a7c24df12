//! Thread stacks: `THREAD_SIZE` bytes from the vmap area, aligned to
//! `THREAD_SIZE`, an unmapped guard page below and a gap above, with
//! `STACK_END_MAGIC` in the lowest word (Linux `alloc_thread_stack_node` with
//! `CONFIG_VMAP_STACK`).
//!
//! Freed stacks go to a per-CPU cache of `NR_CACHED_STACKS` first (vmap and
//! unmap are not free); a reused stack is zeroed, so usage accounting and a
//! new thread never see an old one's data.

use alloc::vec::Vec;
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
            unsafe { crate::arch::cpu::clear_words(bottom as *mut u8, THREAD_SIZE as usize) };
            ThreadStack { bottom }
        }
        None => {
            let r = vmalloc::vmalloc_guarded(THREAD_SIZE, THREAD_SIZE, THREAD_STACK_GUARDS)?;
            ThreadStack { bottom: r.start }
        }
    };
    // SAFETY: the lowest word of the stack we now own.
    unsafe { (stack.bottom as *mut u64).write_volatile(STACK_END_MAGIC) };
    if !register(stack.bottom) {
        // Not an assertion: user space can ask for threads until this fills.
        if !put_cached(stack.bottom) {
            vmalloc::vfree(stack.bottom).expect("thread stacks come from the vmap area");
        }
        return Err(VmapError::TooManyStacks);
    }
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
    cached_on(this_cpu().id())
}

/// Stacks in `cpu`'s cache (they hold their frames until reused).
pub fn cached_on(cpu: usize) -> usize {
    crate::arch::percpu::of(cpu).stack_cache.iter().filter(|s| s.load(Ordering::Relaxed) != 0).count()
}

/// Record a live stack; false if the registry is full.
fn register(bottom: u64) -> bool {
    LIVE.iter().any(|s| s.compare_exchange(0, bottom, Ordering::AcqRel, Ordering::Relaxed).is_ok())
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

pub mod ktests {
    use x86_64::structures::paging::PageTableFlags as F;

    use super::*;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::mm::paging;

    pub static KTESTS: &[KTest] = &[
        KTest { name: "thread_stack_layout_magic_guards", run: layout_magic_alignment_and_guards },
        KTest { name: "thread_stack_cache_reuse", run: cache_reuses_two_then_frees_to_vmap },
        KTest { name: "thread_stack_zeroed_on_reuse", run: reused_stack_is_zeroed_with_magic },
        KTest { name: "guard_below_every_thread_stack", run: guard_below_every_thread_stack },
        KTest { name: "current_is_per_cpu", run: current_is_per_cpu_and_owns_rsp },
    ];

    /// Two frees fill the cache, two allocations take the same stacks back,
    /// a third free goes back to the vmap area (unmapped).
    fn cache_reuses_two_then_frees_to_vmap() -> KResult {
        drain_cache();
        let s: Vec<ThreadStack> =
            (0..3).map(|_| alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
        let mut bottoms: Vec<u64> = s.iter().map(|t| t.bottom).collect();
        free(s[0]);
        free(s[1]);
        kcheck!(cached() == 2, "cache holds {} stacks, want 2", cached());
        free(s[2]);
        kcheck!(paging::translate(s[2].bottom).is_none(), "third freed stack still mapped");
        let again: Vec<ThreadStack> =
            (0..2).map(|_| alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
        let mut got: Vec<u64> = again.iter().map(|t| t.bottom).collect();
        got.sort_unstable();
        bottoms.truncate(2);
        bottoms.sort_unstable();
        kcheck!(got == bottoms, "reused {got:x?}, cached were {bottoms:x?}");
        again.into_iter().for_each(free);
        drain_cache();
        Ok(())
    }

    fn reused_stack_is_zeroed_with_magic() -> KResult {
        drain_cache();
        let s = alloc().map_err(|e| alloc::format!("{e}"))?;
        // SAFETY: our own fresh stack.
        unsafe { core::ptr::write_bytes((s.bottom + 8) as *mut u8, 0xa5, (THREAD_SIZE - 8) as usize) };
        free(s);
        let t = alloc().map_err(|e| alloc::format!("{e}"))?;
        kcheck!(t.bottom == s.bottom, "cache not used");
        kcheck!(t.end_magic_ok(), "no end magic");
        kcheck!(t.not_used() == THREAD_SIZE - 8, "reused stack not zeroed: {} bytes clean", t.not_used());
        free(t);
        drain_cache();
        Ok(())
    }

    fn layout_magic_alignment_and_guards() -> KResult {
        let s = alloc().map_err(|e| alloc::format!("{e}"))?;
        let result = (|| {
            kcheck!(s.bottom % THREAD_SIZE == 0, "stack {:#x} not THREAD_SIZE-aligned", s.bottom);
            // SAFETY: mapped stack bottom.
            let w0 = unsafe { (s.bottom as *const u64).read() };
            kcheck!(w0 == STACK_END_MAGIC, "lowest word {w0:#x}");
            kcheck!(find(s.bottom - 8) == Some((s, true)), "guard not recognised");
            kcheck!(find(s.top() - 8) == Some((s, false)), "stack not recognised");
            Ok(())
        })();
        free(s);
        result
    }

    /// Every live thread stack: mapped RW+NX, guard page below unmapped,
    /// the page above unmapped too (the gap).
    fn guard_below_every_thread_stack() -> KResult {
        let tasks = crate::sched::snapshot();
        kcheck!(tasks.len() >= 2, "expected idle and init at least");
        for t in tasks {
            let (b, top) = (t.stack.bottom, t.stack.top());
            let flags = paging::translate(b).map(|(_, f)| f);
            kcheck!(
                flags.is_some_and(|f| f.contains(F::WRITABLE | F::NO_EXECUTE)),
                "{} stack mapped as {flags:?}",
                t.name
            );
            kcheck!(paging::translate(b - 8).is_none(), "guard below {}'s stack is mapped", t.name);
            kcheck!(paging::translate(top).is_none(), "gap above {}'s stack is mapped", t.name);
        }
        Ok(())
    }

    /// `current` comes from the per-CPU area, and we run on its stack.
    fn current_is_per_cpu_and_owns_rsp() -> KResult {
        let cur = crate::sched::current().ok_or("no current task")?;
        let rsp = crate::arch::cpu::stack_pointer();
        kcheck!(cur.pid == crate::sched::INIT_PID, "ktests run in init, current is pid {}", cur.pid);
        kcheck!((cur.stack.bottom..cur.stack.top()).contains(&rsp), "RSP {rsp:#x} not on current's stack");
        Ok(())
    }
}
