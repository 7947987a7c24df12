//! The entry benches: interrupts and exceptions, the cross-CPU call, the
//! syscall and return to user mode, and what the stack tracer costs.

use super::*;

/// Set by the handlers: the RSP they ran at (checked once, after timing).
static HANDLER_RSP: AtomicU64 = AtomicU64::new(0);

pub(super) fn bench_irq_handler(_regs: &mut Regs) {
    HANDLER_RSP.store(cpu::stack_pointer(), Ordering::Relaxed);
}

/// Claims the benchmark's own `int3` / `int 1` while it runs.
static CLAIM_DEBUG: AtomicBool = AtomicBool::new(false);

pub(super) fn bench_debug_hook(_regs: &mut Regs, event: &DebugEvent) -> bool {
    if !CLAIM_DEBUG.load(Ordering::Relaxed) {
        return false;
    }
    HANDLER_RSP.store(event.frame, Ordering::Relaxed);
    matches!(event.kind, DebugKind::Db | DebugKind::Bp)
}

/// `op` timed, then run once more to see which stack its handler ran on.
fn entry(what: &str, expect: &str, minimum: u64, op: fn()) -> CmdResult {
    let samples = timed(SAMPLES, op);
    HANDLER_RSP.store(0, Ordering::Relaxed);
    op();
    let stack = info::name_of(HANDLER_RSP.load(Ordering::Relaxed));
    if stack != expect {
        return Err(failed(alloc::format!("{what}: the handler ran on the {stack} stack, not {expect}")));
    }
    row(what, samples, minimum);
    Ok(())
}

pub(super) fn int_switch() {
    // SAFETY: the vector's gate is the IRQ stub; its handler only stores RSP.
    unsafe { asm!("int {v}", v = const BENCH_SWITCH_VECTOR, options(nomem, nostack)) };
}

fn int_noswitch() {
    // SAFETY: as above, through the stub that stays on this stack.
    unsafe { asm!("int {v}", v = const BENCH_NOSWITCH_VECTOR, options(nomem, nostack)) };
}

pub(super) fn bench_irq() -> CmdResult {
    if skipped_under_kvm("IRQ entries (int N)") {
        return Ok(());
    }
    entry("IRQ entry through the IRQ-stack switch (int N)", "IRQ", MIN_IRQ_SWITCH, int_switch)?;
    entry("IRQ entry, the same stub without the switch", "TASK", MIN_INTERRUPT, int_noswitch)
}

fn int_nmi() {
    // SAFETY: vector 2's gate is the NMI entry on its IST stack; with no
    // NMI pending, the registered handlers find nothing to do.
    unsafe { asm!("int 2", options(nomem, nostack)) };
}

fn int1() {
    // SAFETY: vector 1's gate is the #DB entry (IST shift and all); the
    // bench hook claims the event.
    unsafe { asm!("int 1", options(nomem, nostack)) };
}

pub(super) fn bench_exceptions() -> CmdResult {
    if skipped_under_kvm("#BP, #DB and NMI entries (int3, int 1, int 2)") {
        return Ok(());
    }
    CLAIM_DEBUG.store(true, Ordering::SeqCst);
    let result = (|| {
        entry("#BP entry on the #DB stack (int3)", "#DB", MIN_INTERRUPT, debug::int3)?;
        entry("#DB entry with the IST shift (int 1)", "#DB", MIN_DB, int1)?;
        // The NMI handler stores no RSP: the entry is checked by its count.
        let before = crate::arch::nmi::NMI_COUNT.this().load(Ordering::SeqCst);
        let samples = timed(SAMPLES, int_nmi);
        let seen = crate::arch::nmi::NMI_COUNT.this().load(Ordering::SeqCst) - before;
        if seen != SAMPLES as u64 {
            return Err(failed(alloc::format!("int 2: {seen} NMI entries counted, not {SAMPLES}")));
        }
        row("NMI entry on the NMI stack (int 2)", samples, MIN_INTERRUPT);
        Ok(())
    })();
    CLAIM_DEBUG.store(false, Ordering::SeqCst);
    result
}

// --- IPI, syscall, tracer ------------------------------------------------------------

fn nothing(_: u64) {}

/// A function-call IPI to the next CPU and back: the cost of every TLB
/// shoot-down per target CPU.
pub(super) fn bench_ipi() -> CmdResult {
    let me = this_cpu().id();
    let Some(target) = percpu::online_cpus().find(|&c| c != me) else {
        println!("bench: {:<58} (needs 2 CPUs: --smp 2)", "IPI round trip");
        return Ok(());
    };
    let mut lost = false;
    let samples = timed(SAMPLES, || lost |= smp::call_on(core::iter::once(target), nothing, 0) != 1);
    if lost {
        return Err(failed(alloc::format!("CPU {target} is not online")));
    }
    row(&alloc::format!("IPI round trip (function call CPU {me} -> {target})"), samples, MIN_IPI);
    Ok(())
}

/// Measured in user mode by the `syscall-bench` program, which prints its
/// own row: as booted, then (if it is on) without STACKLEAK, whose erase on
/// every return to user mode is most of the cost.
pub(super) fn bench_syscall() -> CmdResult {
    with_and_without_stackleak("syscall-bench")
}

fn with_and_without_stackleak(prog: &str) -> CmdResult {
    use crate::arch::stackleak;
    let before = (stackleak::erased_bytes(), returns_to_user());
    crate::demos::user_mode::run_here(prog, "2000")?;
    if !stackleak::stackleak() {
        return Ok(());
    }
    let (bytes, returns) = (stackleak::erased_bytes() - before.0, returns_to_user() - before.1);
    // Under -icount `rep stosq` counts one instruction per word; the bytes
    // are the memory a real CPU writes (each thread's first return erases
    // its whole stack, counted in the mean).
    crate::println!("bench: stack erasing: {} bytes per return to user (mean of {returns})", bytes / returns.max(1));
    stackleak::set_stackleak(false);
    let result = crate::demos::user_mode::run_here(prog, "2000 stackleak-off");
    stackleak::set_stackleak(true);
    result
}

/// Returns to user mode on every CPU so far.
fn returns_to_user() -> u64 {
    use core::sync::atomic::Ordering::Relaxed;
    crate::arch::percpu::online_cpus()
        .map(|c| {
            let u = &crate::arch::percpu::of(c).user;
            u.sysret.load(Relaxed) + u.iret.load(Relaxed)
        })
        .sum()
}

/// Two threads of a user process yielding to each other through
/// `sched_yield`, on this CPU: the `yield-bench` program prints its row.
pub(super) fn bench_user_yield() -> CmdResult {
    with_and_without_stackleak("yield-bench")
}

/// Spawn + join (cached stack) with the stack tracer off and on: its cost
/// while off is in every row (the kernel is built with
/// `-Z instrument-mcount`); the context switch itself is not traced (Linux
/// `notrace __schedule`), so a yield would not show it.
pub(super) fn bench_tracer() -> CmdResult {
    let was = crate::debug::stack_tracer::is_on();
    let run = |on: bool| -> Result<Vec<u64>, CmdError> {
        crate::debug::stack_tracer::set_on(on);
        let mut samples = Vec::with_capacity(SPAWN_SAMPLES);
        for _ in 0..SPAWN_SAMPLES {
            let t0 = time::rdtsc();
            spawn_join()?;
            samples.push(time::rdtsc() - t0);
        }
        Ok(samples)
    };
    let off = run(false);
    let on = run(true);
    crate::debug::stack_tracer::set_on(was);
    row("spawn + join, stack tracer off", off?, MIN_SPAWN);
    row("spawn + join, stack tracer on", on?, MIN_SPAWN);
    Ok(())
}
