//! Softirqs (Linux `kernel/softirq.c`, much reduced): deferred halves of
//! interrupt handlers. Hard-IRQ handlers `raise` a bit; the bits run at the
//! outermost IRQ exit, still on the IRQ stack, with interrupts enabled — so
//! a hard IRQ arriving meanwhile nests on the IRQ stack without switching.
//! After `MAX_SOFTIRQ_RESTART` rounds the rest is left to `ksoftirqd/N`.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use x86_64::instructions::interrupts;

use crate::arch::percpu::this_cpu;
use crate::layout::MAX_CPUS;
use crate::sched::WaitQueue;

crate::define_per_cpu! {
    /// Pending softirq bits of this CPU (Linux `__softirq_pending`).
    pub static SOFTIRQ_PENDING: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

/// A softirq number: a bit in the per-CPU pending mask. The kernel's own
/// are constants; a demo claims one at init (`Claimed`), so the kernel's
/// list never names a demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Softirq(u8);

impl Softirq {
    /// The timer tick's deferred work: waking sleepers.
    pub const TIMER: Softirq = Softirq(0);
    /// The first number `Claimed::claim` hands out.
    const FIRST_CLAIMABLE: u8 = 1;
}

const NR_SOFTIRQS: usize = 16;
/// Rounds at one IRQ exit before the rest is deferred (Linux: 10).
pub const MAX_SOFTIRQ_RESTART: usize = 10;

static HANDLERS: [AtomicU64; NR_SOFTIRQS] = [const { AtomicU64::new(0) }; NR_SOFTIRQS];
static NEXT_FREE: AtomicU8 = AtomicU8::new(Softirq::FIRST_CLAIMABLE);
/// Per CPU: softirq rounds its ksoftirqd ran instead of an IRQ exit.
pub static DEFERRED_ROUNDS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Install the handler of `nr`.
pub fn open(nr: Softirq, handler: fn()) {
    HANDLERS[nr.0 as usize].store(handler as usize as u64, Ordering::Release);
}

/// A softirq number owned by code outside the kernel's list (a demo, a
/// ktest): claimed once, at init, then raised by its owner.
pub struct Claimed(AtomicU8);

impl Default for Claimed {
    fn default() -> Self {
        Self::new()
    }
}

impl Claimed {
    const UNCLAIMED: u8 = u8::MAX;

    pub const fn new() -> Claimed {
        Claimed(AtomicU8::new(Self::UNCLAIMED))
    }

    /// Take the next free number for `handler` (a second call keeps the
    /// number and replaces the handler).
    pub fn claim(&self, handler: fn()) {
        let nr = match self.0.load(Ordering::Acquire) {
            Self::UNCLAIMED => {
                let nr = NEXT_FREE.fetch_add(1, Ordering::AcqRel);
                assert!((nr as usize) < NR_SOFTIRQS, "more than {NR_SOFTIRQS} softirqs claimed");
                self.0.store(nr, Ordering::Release);
                nr
            }
            nr => nr,
        };
        open(Softirq(nr), handler);
    }

    /// Mark it pending on this CPU. Panics if it was never claimed.
    pub fn raise(&self) {
        let nr = self.0.load(Ordering::Acquire);
        assert!(nr != Self::UNCLAIMED, "raising a softirq that was never claimed");
        raise(Softirq(nr));
    }
}

/// Mark `nr` pending on this CPU (from a hard-IRQ handler, usually).
pub fn raise(nr: Softirq) {
    crate::softirq::SOFTIRQ_PENDING.this().fetch_or(1 << nr.0, Ordering::SeqCst);
}

/// Run pending softirqs, at most `rounds` times (interrupts off on entry and
/// exit); returns whether any are left. Never re-entered on one CPU: an IRQ
/// that arrives while handlers run (interrupts are on) leaves the pending
/// bits to the loop below (Linux `in_interrupt()` in `irq_exit`). Never
/// inlined: a frame of its own in traces, as Linux's `__do_softirq`.
#[inline(never)]
fn run_rounds(rounds: usize) -> bool {
    let cpu = this_cpu();
    if cpu.set_softirq(true) {
        return false;
    }
    let left = run_rounds_inner(cpu, rounds);
    cpu.set_softirq(false);
    left
}

fn run_rounds_inner(cpu: &crate::arch::percpu::PerCpu, rounds: usize) -> bool {
    for _ in 0..rounds {
        let pending = crate::softirq::SOFTIRQ_PENDING.of(cpu.id()).swap(0, Ordering::SeqCst);
        if pending == 0 {
            return false;
        }
        interrupts::enable();
        for (nr, h) in HANDLERS.iter().enumerate() {
            let h = h.load(Ordering::Acquire);
            if pending & (1 << nr) != 0 && h != 0 {
                // SAFETY: only `open` stores here, always a `fn()`.
                let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(h as usize) };
                f();
            }
        }
        interrupts::disable();
    }
    crate::softirq::SOFTIRQ_PENDING.of(cpu.id()).load(Ordering::SeqCst) != 0
}

/// Outermost IRQ exit (interrupts off, on the IRQ stack).
pub fn run_on_irq_exit() {
    if run_rounds(MAX_SOFTIRQ_RESTART) {
        KSOFTIRQD_WAIT[this_cpu().id()].wake_up();
    }
}

/// Where each CPU's ksoftirqd sleeps.
static KSOFTIRQD_WAIT: [WaitQueue; MAX_CPUS] = [const { WaitQueue::new("ksoftirqd") }; MAX_CPUS];

/// `ksoftirqd/N`: runs what the IRQ exit left over, in thread context, on
/// CPU N (it is pinned there; `cpu` is N).
pub fn ksoftirqd(cpu: u64) -> i64 {
    let wait = &KSOFTIRQD_WAIT[cpu as usize];
    loop {
        wait.wait_until(|| crate::softirq::SOFTIRQ_PENDING.this().load(Ordering::SeqCst) != 0);
        interrupts::disable();
        DEFERRED_ROUNDS[this_cpu().id()].fetch_add(1, Ordering::Relaxed);
        run_rounds(1);
        interrupts::enable();
    }
}

pub mod ktests {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use crate::arch::percpu::this_cpu;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};

    pub static KTESTS: &[KTest] = &[
        KTest { name: "softirq_not_reentered", run: not_reentered_while_running, oopses: false },
        KTest { name: "softirq_in_ksoftirqd_not_preempted", run: ksoftirqd_handler_is_not_preempted, oopses: false },
    ];

    static RUNS: AtomicU64 = AtomicU64::new(0);
    static COUNT: super::Claimed = super::Claimed::new();

    fn count() {
        RUNS.fetch_add(1, Ordering::SeqCst);
    }

    /// An IRQ exit that finds softirq handlers already running on this CPU
    /// (as when one interrupts ksoftirqd) must not run them re-entrantly.
    fn not_reentered_while_running() -> KResult {
        COUNT.claim(count);
        let cpu = this_cpu();
        let result = x86_64::instructions::interrupts::without_interrupts(|| {
            RUNS.store(0, Ordering::SeqCst);
            cpu.set_softirq(true); // "handlers are running"
            COUNT.raise();
            super::run_on_irq_exit();
            let ran_inside = RUNS.load(Ordering::SeqCst);
            cpu.set_softirq(false);
            super::run_on_irq_exit();
            (ran_inside, RUNS.load(Ordering::SeqCst))
        });
        kcheck!(result.0 == 0, "softirq ran re-entrantly ({} runs)", result.0);
        kcheck!(result.1 == 1, "pending softirq did not run afterwards ({} runs)", result.1);
        Ok(())
    }

    /// Set while `slow` spins inside ksoftirqd.
    static IN_SLOW: AtomicBool = AtomicBool::new(false);
    /// `slow` has spun inside ksoftirqd once.
    static SLOW_DONE: AtomicBool = AtomicBool::new(false);
    static SLOW: super::Claimed = super::Claimed::new();

    /// Re-raises itself until it runs in ksoftirqd (the IRQ exit runs at
    /// most MAX_SOFTIRQ_RESTART rounds), then spins there, interrupts on,
    /// across several timer ticks.
    fn slow() {
        if SLOW_DONE.load(Ordering::SeqCst) {
            return;
        }
        if !crate::sched::current().is_some_and(|t| t.name.starts_with("ksoftirqd/")) {
            SLOW.raise();
            return;
        }
        IN_SLOW.store(true, Ordering::SeqCst);
        let until = crate::time::jiffies() + 3;
        while crate::time::jiffies() < until {
            core::hint::spin_loop();
        }
        IN_SLOW.store(false, Ordering::SeqCst);
        SLOW_DONE.store(true, Ordering::SeqCst);
    }

    /// Softirq handlers run in ksoftirqd are softirq context (Linux
    /// `SOFTIRQ_OFFSET`): a timer tick meanwhile must not switch to another
    /// thread, which would then run with this CPU's `in_softirq` set. This
    /// thread stays runnable on the same CPU and looks whether it ever runs
    /// while the handler is in the middle of its spin.
    fn ksoftirqd_handler_is_not_preempted() -> KResult {
        SLOW.claim(slow);
        SLOW_DONE.store(false, Ordering::SeqCst);
        let cpu = this_cpu().id();
        let refused = crate::sched::schedules_while_atomic();
        x86_64::instructions::interrupts::without_interrupts(|| SLOW.raise());
        let mut ran_inside = 0u64;
        let done = crate::time::spin_until(5_000, || {
            if IN_SLOW.load(Ordering::SeqCst) {
                ran_inside += 1;
            }
            crate::sched::yield_now();
            SLOW_DONE.load(Ordering::SeqCst)
        });
        kcheck!(done, "the softirq never ran in ksoftirqd/{cpu}");
        kcheck!(this_cpu().id() == cpu, "moved CPUs");
        kcheck!(ran_inside == 0, "this thread ran {ran_inside} times while ksoftirqd/{cpu} was inside a handler");
        // Not even asked for: the tick's exit must see softirq context and
        // not try (the switch's own check is a last line, printing a BUG).
        let refused = crate::sched::schedules_while_atomic() - refused;
        kcheck!(refused == 0, "{refused} \"BUG: scheduling while atomic\" while ksoftirqd ran the handler");
        Ok(())
    }
}
