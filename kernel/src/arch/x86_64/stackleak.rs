//! Stack erasing (Linux `kernel/stackleak.c`, `CONFIG_GCC_PLUGIN_STACKLEAK`):
//! every return to user mode fills the part of the thread stack this
//! entry used with `STACKLEAK_POISON`, so the next syscall cannot read
//! what an earlier one left there.
//!
//! What was used is known as in Linux, not found by scanning: `mcount`
//! (every instrumented function's entry) keeps the lowest RSP the running
//! thread reached since its last erase in a per-CPU word (Linux
//! `current->lowest_stack`, lowered by the plugin's `stackleak_track_stack`
//! calls); a context switch saves it in the task and loads the next
//! task's (`save`, `start`). Below that point only untracked writes can be dirty
//! — an interrupt frame pushed on the thread stack, the uninstrumented
//! switch path, `switch_to`'s pushes — so the erase starts at the lowest
//! dirty word above the first run of `SEARCH_WORDS` poison words (Linux
//! `stackleak_find_top_of_poison`, `STACKLEAK_SEARCH_DEPTH` = 128 bytes),
//! and ends at the entry's frame.
//!
//! A task's first erase (a new thread: its stack may come from the cache
//! with an earlier thread's data; or erasing was just switched on and
//! nothing was tracked) poisons its whole stack, from the word above the
//! end magic: after it, everything below the tracked point is poison.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu::this_cpu;
pub use crate::layout::STACKLEAK_POISON;

/// Erase the used thread stack on every return to user (Linux STACKLEAK).
pub(in crate::arch) static STACKLEAK: AtomicBool = AtomicBool::new(true);
/// Bumped whenever erasing is switched on: a task whose last erase was in
/// an older generation was not tracked since, and is erased whole.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Linux `STACKLEAK_SEARCH_DEPTH` (128 bytes): poison words in a row that
/// mark the end of what an entry left below the tracked point.
pub const SEARCH_WORDS: u64 = 16;
/// Below RSP at a context switch: the uninstrumented `switch_to` pushes
/// its callee-saved registers and return address (7 words) there.
const SWITCH_PUSHES: u64 = 64;

pub fn set_stackleak(on: bool) {
    if on && !STACKLEAK.load(Ordering::SeqCst) {
        GENERATION.fetch_add(1, Ordering::SeqCst);
    }
    STACKLEAK.store(on, Ordering::SeqCst);
    crate::arch::mcount::set_tracking(on);
}

pub fn stackleak() -> bool {
    STACKLEAK.load(Ordering::Relaxed)
}

/// Start tracking on the boot CPU (its GS base is set; APs get theirs
/// before their first Rust function).
pub fn init() {
    crate::arch::mcount::set_tracking(stackleak());
}

/// A thread's stack as stack erasing sees it (one per task; the running
/// one's is this CPU's `RUNNING`).
pub struct Tracked {
    /// Its lowest usable word (above the end magic) and its top.
    bottom: u64,
    top: u64,
    /// The lowest RSP since its last erase, while it is switched out
    /// (valid for `generation`).
    lowest: AtomicU64,
    /// The generation of its last erase; 0: never erased.
    generation: AtomicU64,
    /// The deepest word an erase found used (Linux STACKLEAK_METRICS
    /// `lowest_stack`; u64::MAX: none yet): erased words read as unused,
    /// this keeps the high-water mark for `stack_not_used`.
    deepest: AtomicU64,
    /// How far down the search for poison may read: the bottom, or of a
    /// dynamic stack the lowest backed byte when it was last looked up
    /// (pages are only added while it lives, so everything above stays
    /// backed; reading below would back pages for nothing).
    floor: AtomicU64,
}

impl Tracked {
    pub const fn new(bottom: u64, top: u64) -> Self {
        Tracked {
            bottom,
            top,
            lowest: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            deepest: AtomicU64::new(u64::MAX),
            floor: AtomicU64::new(bottom),
        }
    }

    /// The deepest word an erase found used (u64::MAX: none yet).
    pub fn deepest(&self) -> u64 {
        self.deepest.load(Ordering::Relaxed)
    }
}

crate::define_per_cpu! {
    /// The running thread's `Tracked` (0 until the first switch).
    static RUNNING: AtomicU64 = AtomicU64::new(0);
}

/// `next`, a user thread, starts running on this CPU (every context switch
/// to one, the last one of an exiting task included; and init and idle at
/// their first run, so a record is loaded from the start): what `mcount`
/// and `erase_start` need of it. Kernel threads are not followed: they never
/// return to user mode, and `mcount` ignores their RSPs, which lie outside
/// the stack of the record loaded. Off, only which stack runs is
/// kept; switching erasing on starts a new generation, in which every
/// task's first erase is whole and sets this CPU's tracking up again.
#[instrument_fn = "off"]
#[inline(always)]
pub fn start(next: &Tracked) {
    RUNNING.this().store(next as *const Tracked as u64, Ordering::Relaxed);
    if !stackleak() {
        return;
    }
    let cpu = this_cpu();
    // Raw, whatever its generation: `erase_start` checks that.
    cpu.stackleak_lowest.store(next.lowest.load(Ordering::Relaxed), Ordering::Relaxed);
    cpu.stackleak_bottom.store(next.bottom, Ordering::Relaxed);
}

/// Before a context switch chooses the next task, still on `prev`'s stack
/// with interrupts off: keep `prev`'s lowest point (at least the switch's
/// own pushes below RSP) for when it runs again.
#[instrument_fn = "off"]
#[inline(always)]
pub fn save(prev: &Tracked) {
    if !stackleak() {
        return;
    }
    let rsp = crate::arch::cpu::stack_pointer();
    let lowest = this_cpu().stackleak_lowest.load(Ordering::Relaxed);
    prev.lowest.store(lowest.min(rsp.wrapping_sub(SWITCH_PUSHES)), Ordering::Relaxed);
}

/// Where erasing starts (Linux `stackleak_erase`, called by the exit
/// path's `STACKLEAK_ERASE` right before it restores the user registers;
/// `end` is where the entry's Rust frames began: the user frame, or below
/// it by the syscall's random offset; the entry code then fills
/// `[returned value, end)` with `STACKLEAK_POISON`). 0: nothing to erase.
/// Only called with erasing on (the macro checks the flag first).
// Not traced (Linux `noinstr`): it ends the tracking it would update.
#[instrument_fn = "off"]
pub extern "C" fn erase_start(end: u64) -> u64 {
    let running = RUNNING.this().load(Ordering::Relaxed) as *const Tracked;
    // SAFETY: set at every switch to the task now running, whose task (and
    // its `Tracked`) is not freed while it runs.
    let Some(tracked) = (unsafe { running.as_ref() }) else { return end };
    // The record must be this stack's: with another task's, the erase
    // would fill memory between two stacks (a switch that skipped `start`).
    if !(tracked.bottom..=tracked.top).contains(&end) {
        wrong_record(tracked, end);
    }
    let cpu = this_cpu();
    let generation = GENERATION.load(Ordering::Relaxed);
    // Nothing tracked below `end` (it was reset to the stack's top): the
    // entry used nothing below where its frames began.
    let lowest = cpu.stackleak_lowest.load(Ordering::Relaxed).min(end);
    let floor = tracked.floor.load(Ordering::Relaxed);
    let (start, used) = if tracked.generation.load(Ordering::Relaxed) != generation || lowest < floor {
        first_erase(tracked, generation, end)
    } else {
        let start = top_of_poison(lowest, floor);
        (start, start)
    };
    // Only the task itself writes it (here, while it runs).
    if used < tracked.deepest.load(Ordering::Relaxed) {
        tracked.deepest.store(used, Ordering::Relaxed);
    }
    // Everything below `end` is poison from here on: track afresh from
    // the stack's top (from `end`, a next syscall whose random offset is
    // smaller would erase the poison between again).
    cpu.stackleak_lowest.store(tracked.top, Ordering::Relaxed);
    // start <= end: `top_of_poison` and `first_used` stay below `end`.
    ERASED.this().fetch_add(end.wrapping_sub(start), Ordering::Relaxed);
    start
}

/// An erase from the floor up (`erase_start`'s slow way; out of line so the
/// usual erase keeps a small frame): the first in this generation, or
/// after RSP went below the floor — a dynamic stack grew, and its new
/// pages hold zero, not the poison the search knows as clean. What was
/// used is what is neither zero (never used) nor poison from below.
/// Tracking may have been off at the last switch (`start` and `save` skip
/// their work then): the per-CPU bottom is set here, and the task's point,
/// which the next switch overwrites anyway.
#[cold]
#[inline(never)]
#[instrument_fn = "off"]
fn first_erase(tracked: &Tracked, generation: u64, end: u64) -> (u64, u64) {
    tracked.generation.store(generation, Ordering::Relaxed);
    tracked.lowest.store(tracked.top, Ordering::Relaxed);
    this_cpu().stackleak_bottom.store(tracked.bottom, Ordering::Relaxed);
    // Of a dynamic stack only the backed part: below it nothing was ever
    // used, and touching it would back it. (`bottom` lies above the end
    // magic: the larger of the two.)
    let floor = backed_bottom(tracked.bottom, tracked.top).max(tracked.bottom);
    tracked.floor.store(floor, Ordering::Relaxed);
    (floor, first_used(floor, end))
}

/// Where a stack's backed part starts, as the layer that knows pages says
/// (`set_backed_bottom`, once dynamic stacks exist); else its bottom.
static BACKED_BOTTOM: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Hand down how to find a stack's backed part (`stacks::dynamic`, when armed).
pub fn set_backed_bottom(f: fn(u64, u64) -> u64) {
    BACKED_BOTTOM.store(f as usize, Ordering::SeqCst);
}

fn backed_bottom(bottom: u64, top: u64) -> u64 {
    match BACKED_BOTTOM.load(Ordering::Relaxed) {
        0 => bottom,
        f => {
            // SAFETY: only `set_backed_bottom` stores here, a `fn(u64, u64) -> u64`.
            let f = unsafe { core::mem::transmute::<usize, fn(u64, u64) -> u64>(f) };
            f(bottom, top)
        }
    }
}

/// Out of line: the panic's formatting would widen `erase_start`'s frame,
/// which every erase then clears.
#[cold]
#[inline(never)]
fn wrong_record(tracked: &Tracked, end: u64) -> ! {
    panic!(
        "stackleak: the running stack's record {:#x}..{:#x} does not hold the frame {end:#x}",
        tracked.bottom, tracked.top
    )
}

crate::define_per_cpu! {
    /// Bytes poisoned by the erases on this CPU (`bench` reports them per
    /// operation: under `-icount` a `rep stosq` is one instruction per
    /// word, but the memory written is the cost a real CPU feels).
    pub static ERASED: AtomicU64 = AtomicU64::new(0);
}

/// Bytes erased on all CPUs so far.
pub fn erased_bytes() -> u64 {
    crate::arch::percpu::online_cpus().map(|c| ERASED.of(c).load(Ordering::Relaxed)).sum()
}

/// Linux `stackleak_find_top_of_poison`: from the tracked point down, the
/// lowest dirty word above `SEARCH_WORDS` poison words in a row (or the
/// bottom). `std; repe scasq` walks the poison downward.
fn top_of_poison(lowest: u64, bottom: u64) -> u64 {
    let mut top = lowest;
    loop {
        if top <= bottom {
            return bottom;
        }
        // At least one word: top > bottom, both 8-aligned.
        let words = ((top - bottom) / 8).min(SEARCH_WORDS);
        let dirty: u8;
        let at: u64;
        // SAFETY: reads [top - 8 * words, top) of this thread's own stack,
        // below RSP (only read); DF is set for the scan and cleared again.
        unsafe {
            core::arch::asm!(
                "std",
                "repe scasq",
                "cld",
                "setne {dirty}",
                dirty = out(reg_byte) dirty,
                inout("rdi") top.wrapping_sub(8) => at,
                inout("rcx") words => _,
                in("rax") STACKLEAK_POISON,
                options(nostack, readonly),
            )
        };
        // Ran through `words` poison words (ZF set by the last): done.
        // Otherwise the mismatch is at `at + 8` (RDI moved past it).
        if dirty == 0 {
            return top;
        }
        top = at.wrapping_add(8);
    }
}

/// The lowest word in `[bottom, end)` that is neither zero (never used)
/// nor poison (erased before): `repe scasq` over runs of each.
fn first_used(bottom: u64, end: u64) -> u64 {
    let mut lowest = bottom;
    while lowest < end {
        // SAFETY: this thread's own stack below RSP: mapped, only read.
        let word = unsafe { (lowest as *const u64).read_volatile() };
        if word != 0 && word != STACKLEAK_POISON {
            break;
        }
        let stop: u64;
        // SAFETY: `repe scasq` reads [lowest, end), inside this stack
        // below RSP; DF is clear (the Rust ABI requires it).
        unsafe {
            core::arch::asm!(
                "repe scasq",
                "jne 2f",
                "add rdi, 8", // ran to the end: no mismatch to step back over
                "2:",
                "sub rdi, 8",
                inout("rdi") lowest => stop,
                inout("rcx") (end - lowest) / 8 => _,
                in("rax") word,
                options(nostack, readonly),
            )
        };
        lowest = stop;
    }
    lowest
}
