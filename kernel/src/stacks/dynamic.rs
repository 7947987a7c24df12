//! Thread stacks that grow on demand (docs/dynamic-stacks.md): the stack's
//! whole virtual range and its guard page as for any thread stack, only
//! the top `initial_pages()` backed (`DYNAMIC_STACK_INITIAL_PAGES` unless
//! `dynamic-stacks on PAGES` says otherwise); each page below is marked
//! growable in its page-table entry (`paging::GROWABLE_PTE`) and mapped by
//! the first #PF that touches it.
//!
//! Linux's RFC (Tatashin, 2024) mapped the page in the #DF handler and
//! returned from it; #DF is an abort. Here the fault is never a #DF: while
//! dynamic stacks exist (`arm`) #PF has its own IST stack, so the CPU can
//! always deliver it, and external interrupts enter through the entry
//! stack and replay their frame onto the thread stack in software (a fault
//! there is an ordinary #PF, not a lost interrupt). `grow` is what the #PF
//! entry asks first; it takes no lock and allocates nothing: its frames
//! come zeroed from a per-CPU reserve that `refill` tops up whenever a
//! thread on a dynamic stack is switched in.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::layout::{
    DYNAMIC_RESERVE_FRAMES, DYNAMIC_STACK_INITIAL_PAGES, PAGE_SIZE, STACK_END_MAGIC, THREAD_SIZE, THREAD_STACK_SIZES,
};
use crate::mm::{paging, phys};

/// Frames ready for growth faults on one CPU: a stack of zeroed frames.
/// Touched only by its own CPU with interrupts off (the #PF handler runs
/// with them off; `refill` turns them off), so plain loads and stores do.
pub struct Reserve {
    frames: [AtomicU64; DYNAMIC_RESERVE_FRAMES],
    count: AtomicUsize,
}

crate::define_per_cpu! {
    /// This CPU's zeroed frames for growth faults.
    pub static RESERVE: crate::stacks::dynamic::Reserve = crate::stacks::dynamic::Reserve {
        frames: [const { core::sync::atomic::AtomicU64::new(0) }; crate::layout::DYNAMIC_RESERVE_FRAMES],
        count: core::sync::atomic::AtomicUsize::new(0),
    };
}

crate::define_per_cpu! {
    /// Pages mapped by growth faults on this CPU.
    pub static GROWN_PAGES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

/// #PF is on its own stack and interrupts enter through the entry stack:
/// dynamic stacks may exist. Set once, before the first dynamic stack.
static ARMED: AtomicBool = AtomicBool::new(false);
/// New `THREAD_SIZE` threads get dynamic stacks (`dynamic-stacks on`).
static DEFAULT_ON: AtomicBool = AtomicBool::new(false);
/// Pages a new dynamic stack has backed from the start (`dynamic-stacks on PAGES`).
static INITIAL_PAGES: AtomicU64 = AtomicU64::new(DYNAMIC_STACK_INITIAL_PAGES);

/// The most pages a dynamic stack may start with: one must be left to grow.
pub const MAX_INITIAL_PAGES: u64 = THREAD_SIZE / PAGE_SIZE - 1;

/// How many top pages a new dynamic stack has backed.
pub fn initial_pages() -> u64 {
    INITIAL_PAGES.load(Ordering::Relaxed)
}

/// `dynamic-stacks on PAGES`: 1 to `MAX_INITIAL_PAGES`.
pub fn set_initial_pages(pages: u64) {
    assert!((1..=MAX_INITIAL_PAGES).contains(&pages), "checked by the caller");
    INITIAL_PAGES.store(pages, Ordering::Relaxed);
}
/// Dynamic stacks alive (in use or cached).
static LIVE: AtomicU64 = AtomicU64::new(0);

/// The entry layer's switch (it owns the gates): moves #PF onto its IST
/// stack and external interrupts onto the entry stack.
static ARM_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Hand down how to arm (the entry layer, at boot).
pub fn set_arm_hook(arm: fn()) {
    ARM_HOOK.store(arm as usize, Ordering::SeqCst);
}

/// Whether dynamic stacks can exist (the gates have moved).
pub fn armed() -> bool {
    ARMED.load(Ordering::Acquire)
}

/// Move the gates (once); false if the entry layer has not registered.
pub fn arm() -> bool {
    if armed() {
        return true;
    }
    let hook = ARM_HOOK.load(Ordering::SeqCst);
    if hook == 0 {
        return false;
    }
    // SAFETY: only `set_arm_hook` stores here, a `fn()`.
    let arm: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
    // Stack erasing's first pass must not touch (and so back) what is not backed.
    crate::arch::stackleak::set_backed_bottom(resident_bottom);
    arm();
    ARMED.store(true, Ordering::Release);
    true
}

/// `dynamic-stacks on|off`: whether new `THREAD_SIZE` threads grow on demand.
pub fn set_default(on: bool) -> bool {
    if on && !arm() {
        return false;
    }
    DEFAULT_ON.store(on, Ordering::Relaxed);
    true
}

pub fn default_on() -> bool {
    DEFAULT_ON.load(Ordering::Relaxed)
}

/// Dynamic stacks alive (threads' and cached).
pub fn live() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

pub(super) fn created() {
    LIVE.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn destroyed() {
    LIVE.fetch_sub(1, Ordering::Relaxed);
}

/// Dynamic stacks freed so far by the pages they had backed then (their
/// peak: a live stack never gives pages back), index n for n + 1 pages:
/// what `threads-fit` says a thread on a dynamic stack costs.
static FREED: [AtomicU64; MAX_PAGES] = [const { AtomicU64::new(0) }; MAX_PAGES];
const MAX_PAGES: usize = (THREAD_SIZE / PAGE_SIZE) as usize;

pub(super) fn note_freed(pages: u64) {
    if let Some(n) = FREED.get((pages as usize).wrapping_sub(1)) {
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many dynamic stacks were freed with 1, 2, ... pages backed.
pub fn freed() -> [u64; MAX_PAGES] {
    core::array::from_fn(|i| FREED[i].load(Ordering::Relaxed))
}

/// Pages added by growth faults on every CPU.
pub fn grown_pages() -> u64 {
    crate::arch::percpu::online_cpus().map(|c| GROWN_PAGES.of(c).load(Ordering::Relaxed)).sum()
}

/// What `grow` made of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// Mapped: return to the faulting instruction.
    Grew,
    /// Not a growable page of the stack the faulting code runs on.
    NotOurs,
    /// Ours, but no frame to map (the reserve empty and the allocator busy).
    NoFrame,
}

const PTE_PRESENT: u64 = 1;

/// The #PF entry's first question, on the #PF stack with interrupts off:
/// is `addr` a growable page of the stack the interrupted code runs on
/// (`rsp`)? Then map it (and any growable page between it and the pages
/// already there, so a stack's pages stay one run from its top) from the
/// reserve. A fault from any other stack — a reader of another thread's
/// stack (`bt PID`), a wild pointer — is not ours: only the owner grows
/// its stack. No lock, no allocation, no printing.
// Never inlined: the entry sweep puts its breakpoints on it by name.
#[instrument_fn = "off"]
#[inline(never)]
pub fn grow(addr: u64, rsp: u64) -> Growth {
    // One walk: a stack (aligned to its size, at most 32 KiB) lies in one
    // page table, so the pages around the fault are neighbouring entries.
    let Some(entry) = paging::pte(addr) else { return Growth::NotOurs };
    let table = (entry as *const core::sync::atomic::AtomicU64).wrapping_sub(((addr >> 12) & 511) as usize);
    let at = |page: u64| -> &core::sync::atomic::AtomicU64 {
        // SAFETY: `page` lies in the same 2 MiB as `addr` (`in_table`,
        // checked by every caller), so its entry is in the same table.
        unsafe { &*table.add(((page >> 12) & 511) as usize) }
    };
    let page = addr & !(PAGE_SIZE - 1);
    let in_table = |p: u64| p >> 21 == addr >> 21;
    if at(page).load(Ordering::Relaxed) != paging::GROWABLE_PTE || !same_stack(page, rsp.wrapping_sub(1), in_table, at)
    {
        return Growth::NotOurs;
    }
    let mut p = page;
    while in_table(p) && at(p).load(Ordering::Relaxed) == paging::GROWABLE_PTE {
        let Some(frame) = take_frame() else { return Growth::NoFrame };
        // Not present before: no TLB holds it, nothing to flush (SDM 4.10.2.3).
        at(p).store(frame | paging::KERNEL_DATA.bits(), Ordering::Release);
        GROWN_PAGES.this().fetch_add(1, Ordering::Relaxed);
        // The stack's lowest page (the guard below it is a plain empty
        // entry): it carries the end magic, as every thread stack does.
        let below = p - PAGE_SIZE;
        let guard = if in_table(below) { Some(at(below)) } else { paging::pte(below) };
        if guard.is_some_and(|g| g.load(Ordering::Relaxed) == 0) {
            // SAFETY: the lowest word of the page just mapped, ours.
            unsafe { (p as *mut u64).write_volatile(STACK_END_MAGIC) };
        }
        p += PAGE_SIZE;
    }
    Growth::Grew
}

/// `a` and `b` lie in one stack: in one page table, and every page from
/// the lower to the higher is mapped or growable (a stack's guard page is
/// neither), within the largest stack size.
fn same_stack<'t>(
    a: u64,
    b: u64,
    in_table: impl Fn(u64) -> bool,
    at: impl Fn(u64) -> &'t core::sync::atomic::AtomicU64,
) -> bool {
    let (lo, hi) = (a.min(b) & !(PAGE_SIZE - 1), a.max(b));
    if hi - lo >= THREAD_STACK_SIZES[THREAD_STACK_SIZES.len() - 1] || !in_table(lo) || !in_table(hi) {
        return false;
    }
    (lo..=hi).step_by(PAGE_SIZE as usize).all(|p| {
        let v = at(p).load(Ordering::Relaxed);
        v & PTE_PRESENT != 0 || v == paging::GROWABLE_PTE
    })
}

/// A zeroed frame from this CPU's reserve, or — if it ran dry — from the
/// allocator if its lock is free (never waited for: the faulting code may
/// hold it).
fn take_frame() -> Option<u64> {
    let r = RESERVE.this();
    let n = r.count.load(Ordering::Relaxed);
    if n > 0 {
        r.count.store(n - 1, Ordering::Relaxed);
        return Some(r.frames[n - 1].load(Ordering::Relaxed));
    }
    let frame = phys::try_alloc_frame()?.start_address().as_u64();
    // SAFETY: a fresh frame, through the direct map.
    unsafe { crate::arch::cpu::clear_words(phys::phys_to_virt(frame), PAGE_SIZE as usize) };
    Some(frame)
}

/// Frames in this CPU's reserve.
pub fn reserved() -> usize {
    RESERVE.this().count.load(Ordering::Relaxed)
}

/// Frames in every CPU's reserve (held, not leaked).
pub fn reserved_everywhere() -> u64 {
    crate::arch::percpu::online_cpus().map(|c| RESERVE.of(c).count.load(Ordering::Relaxed) as u64).sum()
}

/// Top up this CPU's reserve (whenever a thread on a dynamic stack is
/// switched in, its first run included): that thread can then grow to its
/// full size without the allocator. Cheap when full: a load and a compare.
#[instrument_fn = "off"]
#[inline(always)]
pub fn refill() {
    if RESERVE.this().count.load(Ordering::Relaxed) < DYNAMIC_RESERVE_FRAMES {
        refill_slow();
    }
}

#[inline(never)]
fn refill_slow() {
    while reserved() < DYNAMIC_RESERVE_FRAMES {
        let Some(frame) = phys::alloc_frame() else { return };
        let pa = frame.start_address().as_u64();
        // SAFETY: a fresh frame, through the direct map.
        unsafe { crate::arch::cpu::clear_words(phys::phys_to_virt(pa), PAGE_SIZE as usize) };
        // Interrupts off: the #PF handler takes from the same reserve.
        let kept = x86_64::instructions::interrupts::without_interrupts(|| {
            let r = RESERVE.this();
            let n = r.count.load(Ordering::Relaxed);
            let room = n < DYNAMIC_RESERVE_FRAMES;
            if room {
                r.frames[n].store(pa, Ordering::Relaxed);
                r.count.store(n + 1, Ordering::Relaxed);
            }
            room
        });
        if !kept {
            phys::free_frame(frame).expect("allocated above");
            return;
        }
    }
}

/// Whether `addr` is a growable, not yet backed page (the #DF check).
pub fn growable(addr: u64) -> bool {
    paging::pte(addr & !(PAGE_SIZE - 1)).is_some_and(|e| e.load(Ordering::Relaxed) == paging::GROWABLE_PTE)
}

/// Pages of `[bottom, top)` backed now (lock-free, never faults).
pub fn resident_pages(bottom: u64, top: u64) -> u64 {
    (bottom..top).step_by(PAGE_SIZE as usize).filter(|&p| paging::present(p)).count() as u64
}

/// The lowest byte of `[bottom, top)` from which every page up to `top` is
/// backed (a dynamic stack's pages are one run from its top).
pub fn resident_bottom(bottom: u64, top: u64) -> u64 {
    let mut b = top;
    while b > bottom && paging::present(b - PAGE_SIZE) {
        b -= PAGE_SIZE;
    }
    b
}

/// Make every page of `[start, end)` growable but the top `backed` bytes
/// (a new dynamic stack, fully mapped by `vmalloc`): their frames go back.
/// Only for pages no other CPU has touched.
pub(super) fn unback_fresh(start: u64, end: u64, backed: u64) {
    for p in (start..end - backed).step_by(PAGE_SIZE as usize) {
        let frame = paging::unmap(p).expect("vmalloc mapped it");
        phys::free_frame(frame).expect("mapped frames come from phys");
        paging::mark_growable(p);
    }
}

/// Trim a freed dynamic stack `[start, end)` down to the pages above
/// `keep_from` (its frames back to the allocator, the pages growable
/// again). The stack ran on other CPUs maybe: their TLB entries go first.
pub(super) fn trim(start: u64, end: u64, keep_from: u64) -> u64 {
    let frames: alloc::vec::Vec<_> = (start..keep_from.min(end))
        .step_by(PAGE_SIZE as usize)
        .filter_map(|p| {
            let f = paging::unmap(p)?;
            paging::mark_growable(p);
            Some(f)
        })
        .collect();
    if !frames.is_empty() {
        crate::smp::tlb::flush_tlb_kernel_range(start, keep_from);
    }
    let n = frames.len() as u64;
    for f in frames {
        phys::free_frame(f).expect("mapped frames come from phys");
    }
    n
}

/// Give back the backed pages of the running thread's own stack
/// `[bottom, below)` (`below` under everything live on it): the entry
/// sweep's growth trigger, so that its next pass faults again.
pub fn give_back_below(bottom: u64, top: u64, below: u64) -> u64 {
    let below = below & !(PAGE_SIZE - 1);
    assert!(
        (bottom..top).contains(&below) && below < crate::arch::cpu::stack_pointer(),
        "{below:#x}: not below this stack's RSP"
    );
    trim(bottom, top, below)
}

/// Back every growable page of `[start, end)` (a cached dynamic stack
/// reused as a fixed one): fresh zeroed frames. False if memory ran out
/// (what was mapped stays: the stack is still a valid dynamic one).
pub(super) fn populate(start: u64, end: u64) -> bool {
    for p in (start..end).step_by(PAGE_SIZE as usize) {
        if growable(p) {
            let Some(frame) = phys::alloc_frame() else { return false };
            // SAFETY: a fresh frame, through the direct map.
            unsafe {
                crate::arch::cpu::clear_words(phys::phys_to_virt(frame.start_address().as_u64()), PAGE_SIZE as usize)
            };
            paging::fill_growable(p, frame);
        }
    }
    true
}

/// Clear the growable marks of `[start, end)` (before `vfree`, which
/// unmaps only present pages and would leave the marks to the next user
/// of the range).
pub(super) fn unmark(start: u64, end: u64) {
    for p in (start..end).step_by(PAGE_SIZE as usize) {
        paging::unmark_growable(p);
    }
}
