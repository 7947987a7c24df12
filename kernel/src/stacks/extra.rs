//! Extra stacks (Keith Owens' RFC "extra kernel stacks", 2007; never merged):
//! a pool of spare stacks that a task switches to at a few critical points
//! when its own stack is in danger.
//!
//! Point by point as the RFC has it:
//! - stacks are created for each CPU at boot (`init_cpu`): vmap area,
//!   a guard page below, zeroed, non-executable — like thread stacks;
//! - they are chained on one global free list, counted by a semaphore;
//! - at a critical point (the block layer's generic submit path, which may
//!   sleep and may fail) `call_checked` (through `sched::task_stack`, which
//!   knows the running thread) measures the current stack; above
//!   the threshold it does `down_trylock`: on failure it logs (rate-limited)
//!   and the caller returns -EIO; on success it switches to the extra stack
//!   (`arch::call_on_stack`: interrupts off only around the switch, the
//!   previous RSP in the extra stack's top word for the unwinder), runs the
//!   rest of the submit there — which may sleep — switches back and gives
//!   the stack back (`up`);
//! - the total can change at run time, never below the number in use.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::extra_pool::{Counts, ResizeError, Semaphore};
use crate::layout::{
    EXTRA_STACKS_PER_CPU, EXTRA_STACK_SIZE, EXTRA_STACK_THRESHOLD, MAX_EXTRA_STACKS, PAGE_SIZE, THREAD_SIZE,
};
use crate::mm::vmalloc::{self, ONE_PAGE_GUARDS};
use crate::mm::vmap::VmapError;
use crate::println;
use crate::ratelimit::{RateLimit, Verdict, DEFAULT_BURST, DEFAULT_INTERVAL_MS};
use crate::sync::IrqMutex;
use crate::time::HZ;

struct ExtraStack {
    /// The CPU it was created for (the RFC creates them per CPU; any CPU
    /// may take any free one).
    cpu: usize,
    /// Deepest use seen when it was given back, in bytes.
    deepest: u64,
}

struct Pool {
    /// Every stack, by bottom.
    stacks: BTreeMap<u64, ExtraStack>,
    /// The free list (bottoms); `FREE` counts it.
    free: Vec<u64>,
    counts: Counts,
    log: RateLimit,
}

static POOL: IrqMutex<Pool> = IrqMutex::new(Pool {
    stacks: BTreeMap::new(),
    free: Vec::new(),
    counts: Counts { total: 0, in_use: 0, high_water: 0, switches: 0, eio: 0 },
    log: RateLimit::new(DEFAULT_INTERVAL_MS * HZ / 1000, DEFAULT_BURST),
});

/// The counting semaphore of free stacks.
static FREE: Semaphore = Semaphore::new(0);

/// Bottoms of every stack of the pool, for `stack_info` without locks.
static LIVE: [AtomicU64; MAX_EXTRA_STACKS] = [const { AtomicU64::new(0) }; MAX_EXTRA_STACKS];

/// `extra-stacks off` turns the check off (to show what overflows without it).
static ENABLED: AtomicBool = AtomicBool::new(true);
static THRESHOLD: AtomicU64 = AtomicU64::new(EXTRA_STACK_THRESHOLD);

/// The running thread as the checked call sees it (the scheduler fills it
/// in: `sched::task_stack`).
pub struct Caller<'a> {
    pub name: &'a str,
    pub pid: u32,
    /// Its own thread stack, [bottom, top).
    pub stack: (u64, u64),
    /// Top of the extra stack it runs on (0: its own). Kept in the task,
    /// since a thread may sleep on an extra stack and switch away.
    pub extra_top: &'a AtomicU64,
}

/// A submit refused for want of a free extra stack (the caller returns -EIO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoExtraStack {
    /// Bytes of the current stack in use at the check.
    pub used: u64,
}

/// Create this CPU's extra stacks (at bring-up, after its IRQ stack).
pub fn init_cpu(cpu: usize) {
    for _ in 0..EXTRA_STACKS_PER_CPU {
        add(cpu).expect("out of memory for extra stacks");
    }
}

fn add(cpu: usize) -> Result<(), VmapError> {
    if POOL.lock().counts.total >= MAX_EXTRA_STACKS {
        return Err(VmapError::TooManyStacks);
    }
    let r = vmalloc::vmalloc_guarded(EXTRA_STACK_SIZE, PAGE_SIZE, ONE_PAGE_GUARDS)?;
    LIVE.iter()
        .find(|s| s.compare_exchange(0, r.start, Ordering::AcqRel, Ordering::Relaxed).is_ok())
        .expect("the registry has a slot for every stack under the total");
    let mut p = POOL.lock();
    p.stacks.insert(r.start, ExtraStack { cpu, deepest: 0 });
    p.free.push(r.start);
    p.counts.total += 1;
    drop(p);
    FREE.up();
    Ok(())
}

/// Destroy one free stack; false if none is free.
fn remove_one() -> bool {
    if !FREE.down_trylock() {
        return false;
    }
    let mut p = POOL.lock();
    let bottom = p.free.pop().expect("the semaphore counts the free list");
    p.stacks.remove(&bottom);
    p.counts.total -= 1;
    drop(p);
    if let Some(s) = LIVE.iter().find(|s| s.load(Ordering::Acquire) == bottom) {
        s.store(0, Ordering::Release);
    }
    vmalloc::vfree(bottom).expect("extra stacks come from the vmap area");
    true
}

/// Why a resize failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    Refused(ResizeError),
    NoMemory(VmapError),
}

/// Make the pool `total` stacks: new ones go to the online CPUs in turn.
pub fn resize(total: usize) -> Result<(), Resize> {
    let delta = POOL.lock().counts.resize(total, MAX_EXTRA_STACKS).map_err(Resize::Refused)?;
    let cpus: Vec<usize> = crate::arch::percpu::online_cpus().collect();
    for i in 0..delta.max(0) as usize {
        add(cpus[i % cpus.len()]).map_err(Resize::NoMemory)?;
    }
    for _ in 0..(-delta).max(0) {
        if !remove_one() {
            // Taken meanwhile: as refused as if asked a moment later.
            let in_use = POOL.lock().counts.in_use;
            return Err(Resize::Refused(ResizeError::InUse { asked: total, in_use }));
        }
    }
    Ok(())
}

pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

pub fn set_threshold(bytes: u64) {
    THRESHOLD.store(bytes, Ordering::SeqCst);
}

/// Everything `extra-stacks` prints.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub counts: Counts,
    pub enabled: bool,
    pub threshold: u64,
}

pub fn stats() -> Stats {
    Stats {
        counts: POOL.lock().counts,
        enabled: ENABLED.load(Ordering::SeqCst),
        threshold: THRESHOLD.load(Ordering::SeqCst),
    }
}

/// One stack of the pool, for `stacks` and `extra-stacks`.
pub struct Row {
    pub cpu: usize,
    pub bottom: u64,
    pub top: u64,
    pub in_use: bool,
    /// Deepest use seen, in bytes (for one in use: so far, this use included).
    pub deepest: u64,
}

pub fn rows() -> Vec<Row> {
    let p = POOL.lock();
    p.stacks
        .iter()
        .map(|(&bottom, s)| {
            let in_use = !p.free.contains(&bottom);
            let now = if in_use { EXTRA_STACK_SIZE - not_used(bottom) } else { 0 };
            Row { cpu: s.cpu, bottom, top: bottom + EXTRA_STACK_SIZE, in_use, deepest: s.deepest.max(now) }
        })
        .collect()
}

fn words(bottom: u64) -> &'static [u64] {
    // SAFETY: a stack of the pool is mapped whole until `remove_one`, which
    // only takes free ones; a racing user changes only the statistic.
    unsafe { core::slice::from_raw_parts(bottom as *const u64, (EXTRA_STACK_SIZE / 8) as usize) }
}

fn not_used(bottom: u64) -> u64 {
    super::usage::stack_not_used(words(bottom))
}

/// The extra stack holding `addr`, or whose guard page does (`true`): its
/// [bottom, top).
pub fn find(addr: u64) -> Option<(u64, u64, bool)> {
    LIVE.iter().find_map(|s| {
        let bottom = s.load(Ordering::Acquire);
        let top = bottom + EXTRA_STACK_SIZE;
        match bottom {
            0 => None,
            _ if (bottom..top).contains(&addr) => Some((bottom, top, false)),
            _ if (bottom - PAGE_SIZE..bottom).contains(&addr) => Some((bottom, top, true)),
            _ => None,
        }
    })
}

fn take() -> Option<u64> {
    let mut p = POOL.lock();
    // Under the pool lock so the count and the free list agree for readers.
    if !FREE.down_trylock() {
        p.counts.refused();
        return None;
    }
    let bottom = p.free.pop().expect("the semaphore counts the free list");
    p.counts.took();
    Some(bottom)
}

/// Give a stack back: record how deep it went, zero what was used (the
/// next task must not read this one's data), put it on the free list, `up`.
fn give_back(bottom: u64) {
    let used = EXTRA_STACK_SIZE - not_used(bottom);
    let from = (bottom + EXTRA_STACK_SIZE - used) & !7;
    // SAFETY: our stack, no longer in use: nothing runs on it now.
    unsafe { crate::arch::cpu::clear_words(from as *mut u8, (bottom + EXTRA_STACK_SIZE - from) as usize) };
    let mut p = POOL.lock();
    if let Some(s) = p.stacks.get_mut(&bottom) {
        s.deepest = s.deepest.max(used);
    }
    p.free.push(bottom);
    p.counts.gave_back();
    drop(p);
    FREE.up();
}

/// The RFC's check at a critical point: run `f` here, or — when too little
/// of the current stack is left — on an extra stack, or not at all when
/// none is free (`Err`: the caller fails with -EIO). Thread context only;
/// `f` may sleep.
///
/// The threshold is stated as bytes in use on a `THREAD_SIZE` stack; what
/// decides is what it leaves, `THREAD_SIZE - threshold` bytes below RSP.
/// So a 4 or 8 KiB stack, or one under a stack limit, switches as early
/// as it must instead of overflowing before "half" of it is used.
pub fn call_checked(task: Option<Caller>, f: impl FnOnce() -> i64) -> Result<i64, NoExtraStack> {
    let Some(task) = task else { return Ok(f()) };
    let on_extra = task.extra_top.load(Ordering::Relaxed);
    let (bottom, top) = if on_extra != 0 { (on_extra - EXTRA_STACK_SIZE, on_extra) } else { task.stack };
    let sp = crate::arch::cpu::stack_pointer();
    let needed = THREAD_SIZE.saturating_sub(THRESHOLD.load(Ordering::Relaxed));
    if !ENABLED.load(Ordering::Relaxed) || sp.saturating_sub(bottom) >= needed {
        return Ok(f());
    }
    switch_and_call(&task, top.saturating_sub(sp), f)
}

/// Take an extra stack whatever the current depth and run `f` on it (the
/// `extra-overflow` demo overflows one this way); Err when none is free.
pub fn call_on_extra_stack(task: Caller, f: impl FnOnce() -> i64) -> Result<i64, NoExtraStack> {
    switch_and_call(&task, 0, f)
}

fn switch_and_call(task: &Caller, used: u64, f: impl FnOnce() -> i64) -> Result<i64, NoExtraStack> {
    let on_extra = task.extra_top.load(Ordering::Relaxed);
    let Some(bottom) = take() else {
        let verdict = POOL.lock().log.check(crate::time::jiffies());
        if let Verdict::Print { suppressed } = verdict {
            if suppressed > 0 {
                println!("extra-stacks: {suppressed} callbacks suppressed");
            }
            println!(
                "extra-stacks: {} ({}): {used} of {} stack bytes in use and no extra stack free: -EIO",
                task.name,
                task.pid,
                if on_extra != 0 { EXTRA_STACK_SIZE } else { task.stack.1 - task.stack.0 }
            );
        }
        return Err(NoExtraStack { used });
    };
    let new_top = bottom + EXTRA_STACK_SIZE;
    task.extra_top.store(new_top, Ordering::Relaxed);
    // SAFETY: a free stack of the pool, mapped, now ours alone; its top is
    // page-aligned.
    let r = unsafe { crate::arch::call_on_stack::call_on_stack(new_top, f) };
    task.extra_top.store(on_extra, Ordering::Relaxed);
    give_back(bottom);
    Ok(r)
}

/// Give back the extra stacks of a task killed while on them (its reaper
/// calls this): the innermost is `top`; each one's top word leads to the
/// stack it was entered from, maybe another extra stack.
pub fn release_chain(mut top: u64) {
    while top != 0 {
        let bottom = top - EXTRA_STACK_SIZE;
        // SAFETY: the top word of a mapped stack of the pool.
        let back = unsafe { ((top - 8) as *const u64).read_volatile() };
        give_back(bottom);
        top = match find(back) {
            Some((_, t, false)) => t,
            _ => 0,
        };
    }
}
