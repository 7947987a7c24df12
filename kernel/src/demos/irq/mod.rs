//! Commands that show the IRQ stack at work: `irqnest`, `softirq`,
//! `irq-overflow`, `irq-storm`, `irqs`. Their interrupts are self-IPIs.

mod irqs;

pub use irqs::irqs;

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::arch::irq;
use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::{Regs, RFLAGS_IF};
use crate::arch::vectors::*;
use crate::arch::{apic, cpu};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::softirq::{self, Claimed};
use crate::stacks::info;
use crate::time::{spin_until, SPIN_WAIT_MS};
use crate::{println, sched, time};

/// `irqnest`'s levels: one priority class each, from the demo block's first.
const IRQNEST_LEVELS: u8 = 8;
pub const IRQNEST_MAX: u64 = IRQNEST_LEVELS as u64;
/// The vectors this chapter claims at init (see `vectors.rs`).
static IRQNEST_VECTORS: [AtomicU8; IRQNEST_LEVELS as usize] = [const { AtomicU8::new(0) }; IRQNEST_LEVELS as usize];
static SOFTIRQ_DEMO_VECTOR: AtomicU8 = AtomicU8::new(0);
static SOFTIRQ_NESTED_VECTOR: AtomicU8 = AtomicU8::new(0);
static IRQ_OVERFLOW_VECTOR: AtomicU8 = AtomicU8::new(0);
static IRQ_STORM_VECTOR: AtomicU8 = AtomicU8::new(0);
static SOFTIRQ_FLOOD_VECTOR: AtomicU8 = AtomicU8::new(0);

fn vector(v: &AtomicU8) -> u8 {
    v.load(Ordering::Relaxed)
}

/// Wait for a self-IPI's handler to move `flag` to at least `at_least`.
fn wait_for(flag: &AtomicU32, at_least: u32) -> bool {
    spin_until(SPIN_WAIT_MS, || flag.load(Ordering::SeqCst) >= at_least)
}

/// Register the demo vectors' handlers and the demo softirqs.
pub fn init() {
    let first_class = FIRST_DEMO_VECTOR / 16;
    for (level, v) in IRQNEST_VECTORS.iter().enumerate() {
        v.store(
            irq::claim_in_class(first_class + level as u8, irqnest_handler, "LAPIC  self-IPI irqnest"),
            Ordering::Relaxed,
        );
    }
    SOFTIRQ_DEMO_VECTOR.store(irq::claim(softirq_demo_hard, "LAPIC  self-IPI softirq demo"), Ordering::Relaxed);
    SOFTIRQ_NESTED_VECTOR.store(irq::claim(softirq_demo_nested, "LAPIC  self-IPI softirq nested"), Ordering::Relaxed);
    IRQ_OVERFLOW_VECTOR.store(irq::claim(irq_overflow_handler, "LAPIC  self-IPI irq-overflow"), Ordering::Relaxed);
    IRQ_STORM_VECTOR.store(irq::claim(storm_handler, "LAPIC  self-IPI irq-storm"), Ordering::Relaxed);
    DEMO_SOFTIRQ.claim(softirq_demo_soft);
    STORM_SOFTIRQ.claim(storm_softirq);
    SOFTIRQ_FLOOD_VECTOR
        .store(irq::claim(|_| FLOOD_SOFTIRQ.raise(), "LAPIC  self-IPI softirq-flood"), Ordering::Relaxed);
    FLOOD_SOFTIRQ.claim(flood_softirq);
}

/// The demos' softirqs: `softirq`'s (Keith Owens' worst case), `irq-storm`'s
/// deferred counting, and `softirq-flood`'s, which re-raises itself.
static DEMO_SOFTIRQ: Claimed = Claimed::new();
static STORM_SOFTIRQ: Claimed = Claimed::new();
static FLOOD_SOFTIRQ: Claimed = Claimed::new();

/// Where the code calling this runs, and how the entry code got there.
/// Also notes the stack pointer in `DEMO_SP` (see `ran_on_own_irq_stack`).
fn describe(regs: &Regs) -> (i64, &'static str, &'static str) {
    let count = this_cpu().irq_count.load(Ordering::SeqCst);
    let frame = regs as *const Regs as u64;
    note_demo_sp();
    (count, info::name_of(cpu::stack_pointer()), info::name_of(frame))
}

/// Stack pointers of the demo handlers' steps (0 = unused slot).
static DEMO_SP: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn note_demo_sp() {
    let sp = cpu::stack_pointer();
    // The first free slot takes it; more steps than slots are not noted.
    let _ = DEMO_SP.iter().any(|s| s.compare_exchange(0, sp, Ordering::SeqCst, Ordering::SeqCst).is_ok());
}

/// After a demo: say whether every step ran on *this* CPU's IRQ stack (the
/// stack names above cannot tell one CPU's IRQ stack from another's).
fn ran_on_own_irq_stack(cmd: &str) -> CmdResult {
    let cpu = this_cpu().id();
    let (bottom, top) = crate::stacks::irq::range(cpu).ok_or_else(|| CmdError::Failed("no IRQ stack".into()))?;
    let sps: Vec<u64> = DEMO_SP.iter().map(|s| s.swap(0, Ordering::SeqCst)).filter(|&sp| sp != 0).collect();
    let own = sps.iter().filter(|&&sp| (bottom..top).contains(&sp)).count();
    println!("{cmd}: {own} of {} handler steps ran on CPU {cpu}'s IRQ stack {bottom:016x}..{top:016x}", sps.len());
    if own == sps.len() && own > 0 {
        Ok(())
    } else {
        Err(CmdError::Failed(alloc::format!("a step ran off CPU {cpu}'s IRQ stack")))
    }
}

// --- irqnest ------------------------------------------------------------------

static NEST_LEVELS: AtomicU32 = AtomicU32::new(0);
static NEST_DONE: AtomicU32 = AtomicU32::new(0);
/// Per level: irq_count seen by the handler (the ktest reads it).
static NEST_COUNT: [AtomicI64; IRQNEST_MAX as usize + 1] = [const { AtomicI64::new(-2) }; IRQNEST_MAX as usize + 1];

fn irqnest_handler(regs: &mut Regs) {
    let level = IRQNEST_VECTORS.iter().position(|v| u64::from(vector(v)) == regs.vector).map_or(0, |i| i as u32 + 1);
    let (count, here, interrupted) = describe(regs);
    NEST_COUNT[level as usize].store(count, Ordering::SeqCst);
    println!(
        "irqnest: level {level}: vector {:#04x}, irq_count {count}, on the {here} stack ({}), frame saved on {interrupted}",
        regs.vector,
        if count == 0 { "switched at entry" } else { "nested: no switch" }
    );
    if level < NEST_LEVELS.load(Ordering::SeqCst) {
        // Let the next, higher-priority interrupt in while this one runs.
        x86_64::instructions::interrupts::enable();
        apic::send_self_ipi(vector(&IRQNEST_VECTORS[level as usize]));
        let arrived = wait_for(&NEST_DONE, level + 1);
        x86_64::instructions::interrupts::disable();
        if !arrived {
            println!("irqnest: level {} never arrived", level + 1);
        }
    }
    NEST_DONE.fetch_max(level, Ordering::SeqCst);
}

pub fn irqnest(args: &[&str]) -> CmdResult {
    let [n] = args else {
        return Err(ArgError::usage_and(alloc::format!(" (1 to {IRQNEST_MAX} levels)")).into());
    };
    let n = cmdline::number("N", n, 1..=IRQNEST_MAX)? as u32;
    NEST_LEVELS.store(n, Ordering::SeqCst);
    NEST_DONE.store(0, Ordering::SeqCst);
    DEMO_SP.iter().for_each(|s| s.store(0, Ordering::SeqCst));
    println!("irqnest: in thread context irq_count is {}", this_cpu().irq_count.load(Ordering::SeqCst));
    apic::send_self_ipi(vector(&IRQNEST_VECTORS[0]));
    if !wait_for(&NEST_DONE, 1) {
        return Err(CmdError::Failed("the first self-IPI never arrived".into()));
    }
    println!("irqnest: back in the thread, irq_count {}", this_cpu().irq_count.load(Ordering::SeqCst));
    ran_on_own_irq_stack("irqnest")
}

// --- softirq: hard IRQ -> softirq -> nested hard IRQ --------------------------

static SOFTIRQ_STEP: AtomicU32 = AtomicU32::new(0);

/// Step 1 found itself nested in another interrupt (the self-IPI arrived
/// while a timer tick's softirqs ran with interrupts on): not the walk this
/// demo shows, so `softirq` sends it again.
const SOFTIRQ_NESTED_ELSEWHERE: u32 = 100;

fn softirq_demo_hard(regs: &mut Regs) {
    let (count, here, interrupted) = describe(regs);
    if count != 0 {
        SOFTIRQ_STEP.store(SOFTIRQ_NESTED_ELSEWHERE, Ordering::SeqCst);
        return;
    }
    println!("softirq: 1. hard IRQ {:#04x}: irq_count {count}, on the {here} stack, frame saved on {interrupted}; raising the softirq", regs.vector);
    DEMO_SOFTIRQ.raise();
    SOFTIRQ_STEP.store(1, Ordering::SeqCst);
}

fn softirq_demo_soft() {
    let count = this_cpu().irq_count.load(Ordering::SeqCst);
    let on = x86_64::instructions::interrupts::are_enabled();
    note_demo_sp();
    println!(
        "softirq: 2. softirq at the outermost IRQ exit: irq_count {count}, on the {} stack, interrupts {}",
        info::name_of(cpu::stack_pointer()),
        if on { "on" } else { "off" }
    );
    SOFTIRQ_STEP.store(2, Ordering::SeqCst);
    apic::send_self_ipi(vector(&SOFTIRQ_NESTED_VECTOR));
    if !wait_for(&SOFTIRQ_STEP, 3) {
        println!("softirq: the nested hard IRQ never arrived");
    }
    SOFTIRQ_STEP.store(4, Ordering::SeqCst);
}

fn softirq_demo_nested(regs: &mut Regs) {
    let (count, here, interrupted) = describe(regs);
    println!(
        "softirq: 3. hard IRQ {:#04x} inside the softirq: irq_count {count}, on the {here} stack ({}), frame saved on {interrupted}",
        regs.vector,
        if count == 0 { "switched" } else { "no switch" }
    );
    SOFTIRQ_STEP.store(3, Ordering::SeqCst);
}

pub fn softirq_cmd(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    DEMO_SP.iter().for_each(|s| s.store(0, Ordering::SeqCst));
    for _ in 0..5 {
        SOFTIRQ_STEP.store(0, Ordering::SeqCst);
        apic::send_self_ipi(vector(&SOFTIRQ_DEMO_VECTOR));
        if !wait_for(&SOFTIRQ_STEP, 1) || SOFTIRQ_STEP.load(Ordering::SeqCst) != SOFTIRQ_NESTED_ELSEWHERE {
            break;
        }
    }
    if !wait_for(&SOFTIRQ_STEP, 4) || SOFTIRQ_STEP.load(Ordering::SeqCst) != 4 {
        return Err(CmdError::Failed(alloc::format!("stopped at step {}", SOFTIRQ_STEP.load(Ordering::SeqCst))));
    }
    println!("softirq: back in the thread, irq_count {}", this_cpu().irq_count.load(Ordering::SeqCst));
    ran_on_own_irq_stack("softirq")
}

// --- softirq-flood: more rounds than the IRQ exit may run --------------------

static FLOOD_LEFT: AtomicU64 = AtomicU64::new(0);
static FLOOD_AT_EXIT: AtomicU64 = AtomicU64::new(0);
static FLOOD_IN_KSOFTIRQD: AtomicU64 = AtomicU64::new(0);

fn flood_softirq() {
    let in_irq = this_cpu().irq_count.load(Ordering::SeqCst) >= 0;
    let in_ksoftirqd = sched::current().is_some_and(|t| t.name.starts_with("ksoftirqd/"));
    match (in_irq, in_ksoftirqd) {
        (true, _) => FLOOD_AT_EXIT.fetch_add(1, Ordering::SeqCst),
        (false, true) => FLOOD_IN_KSOFTIRQD.fetch_add(1, Ordering::SeqCst),
        (false, false) => 0,
    };
    if FLOOD_LEFT.fetch_sub(1, Ordering::SeqCst) > 1 {
        FLOOD_SOFTIRQ.raise();
    }
}

pub fn softirq_flood(args: &[&str]) -> CmdResult {
    let [n] = args else {
        return Err(ArgError::usage_and(" (softirq runs)").into());
    };
    let n = cmdline::number("N", n, 1..=100_000)?;
    FLOOD_AT_EXIT.store(0, Ordering::SeqCst);
    FLOOD_IN_KSOFTIRQD.store(0, Ordering::SeqCst);
    FLOOD_LEFT.store(n, Ordering::SeqCst);
    apic::send_self_ipi(vector(&SOFTIRQ_FLOOD_VECTOR));
    // Let ksoftirqd run (it is a thread like us).
    while FLOOD_LEFT.load(Ordering::SeqCst) > 0 {
        sched::sleep_ms(1);
    }
    let (exit, thread) = (FLOOD_AT_EXIT.load(Ordering::SeqCst), FLOOD_IN_KSOFTIRQD.load(Ordering::SeqCst));
    println!(
        "softirq-flood: {n} runs: {exit} at the IRQ exit (at most {} rounds there), {thread} in ksoftirqd/{}",
        softirq::MAX_SOFTIRQ_RESTART,
        this_cpu().id()
    );
    if exit + thread != n {
        return Err(CmdError::Failed("some runs happened elsewhere".into()));
    }
    Ok(())
}

// --- irq-overflow -------------------------------------------------------------

/// 512 bytes per level, on the IRQ stack, until its guard page.
#[inline(never)]
#[allow(unconditional_recursion)]
fn irq_recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    black_box(&mut frame);
    if depth % 4 == 1 {
        println!(
            "irq-overflow: depth {depth:2}, rsp {:016x} on the {} stack",
            cpu::stack_pointer(),
            info::name_of(cpu::stack_pointer())
        );
    }
    frame[0] = depth as u8;
    irq_recurse(depth + 1) + u64::from(black_box(frame)[0])
}

fn irq_overflow_handler(_regs: &mut Regs) {
    irq_recurse(1);
}

pub fn irq_overflow(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("irq-overflow: a self-IPI whose handler recurses on the IRQ stack");
    apic::send_self_ipi(vector(&IRQ_OVERFLOW_VECTOR));
    Err(CmdError::Failed("the handler returned".into()))
}

// --- irq-storm ----------------------------------------------------------------

static STORM_HARD: AtomicU64 = AtomicU64::new(0);
static STORM_SOFT_RUNS: AtomicU64 = AtomicU64::new(0);
static STORM_BAD_STACK: AtomicU64 = AtomicU64::new(0);

fn storm_handler(regs: &mut Regs) {
    STORM_HARD.fetch_add(1, Ordering::Relaxed);
    if info::name_of(cpu::stack_pointer()) != "IRQ" || (regs.rflags & RFLAGS_IF) == 0 {
        STORM_BAD_STACK.fetch_add(1, Ordering::Relaxed);
    }
    STORM_SOFTIRQ.raise();
}

fn storm_softirq() {
    STORM_SOFT_RUNS.fetch_add(1, Ordering::Relaxed);
}

fn storm_sender(n: u64) -> i64 {
    for _ in 0..n {
        apic::send_self_ipi(vector(&IRQ_STORM_VECTOR));
        if STORM_HARD.load(Ordering::Relaxed).is_multiple_of(64) {
            sched::yield_now();
        }
    }
    0
}

pub fn irq_storm(args: &[&str]) -> CmdResult {
    let [n] = args else {
        return Err(ArgError::usage_and(" (self-IPIs)").into());
    };
    let n = cmdline::number("N", n, 1..=10_000_000)?;
    for c in [&STORM_HARD, &STORM_SOFT_RUNS, &STORM_BAD_STACK] {
        c.store(0, Ordering::SeqCst);
    }
    let fail = |e: crate::mm::vmap::VmapError| CmdError::Failed(alloc::format!("{e}"));
    let t0 = time::rdtsc();
    let sender = sched::spawn("irq-storm", storm_sender, n).map_err(fail)?;
    // Threads switching meanwhile, with checksums (threads-stress's body).
    let switchers: Vec<_> = (0..4)
        .map(|i| sched::spawn(&alloc::format!("storm-switch-{i}"), super::threads::stress_thread, i | (2000 << 8)))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let _ = sched::join(sender);
    let mut bad = 0;
    for (i, pid) in switchers.into_iter().enumerate() {
        if sched::join(pid) != Ok(sched::Ended::Exited(0)) || !super::threads::stress_ok(i, 2000) {
            bad += 1;
        }
    }
    let ms = (time::rdtsc() - t0) / time::tsc_per_ms().max(1);
    let (hard, soft, wrong) = (
        STORM_HARD.load(Ordering::SeqCst),
        STORM_SOFT_RUNS.load(Ordering::SeqCst),
        STORM_BAD_STACK.load(Ordering::SeqCst),
    );
    println!("irq-storm: sent {n}, handled {hard} on the IRQ stack ({wrong} elsewhere), softirq ran {soft} times, {ms} ms; switcher checksums bad: {bad}");
    if hard != n || wrong != 0 || bad != 0 {
        return Err(CmdError::Failed("interrupts lost or misplaced, or checksums wrong".into()));
    }
    println!("irq-storm: ok, none lost");
    Ok(())
}

pub mod ktests {
    use core::sync::atomic::Ordering;

    use super::NEST_COUNT;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};

    pub static KTESTS: &[KTest] =
        &[KTest { name: "irq_nested_level_stays", run: nested_level_counts_one_and_stays, oopses: false }];

    /// irq_count is 1 in a nested handler, which stays on the IRQ stack.
    fn nested_level_counts_one_and_stays() -> KResult {
        NEST_COUNT[1].store(-2, Ordering::SeqCst);
        NEST_COUNT[2].store(-2, Ordering::SeqCst);
        super::irqnest(&["2"]).map_err(|_| "irqnest 2 failed")?;
        let (a, b) = (NEST_COUNT[1].load(Ordering::SeqCst), NEST_COUNT[2].load(Ordering::SeqCst));
        kcheck!((a, b) == (0, 1), "irq_count at levels 1, 2: {a}, {b}");
        Ok(())
    }
}
