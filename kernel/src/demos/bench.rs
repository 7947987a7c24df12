//! `bench switch|spawn|irq|ipi|syscall`: cycles per operation (min, median) for a
//! context-switch round trip, spawn+join, a self-IPI through the IRQ stack
//! and without the switch, a cross-CPU function call, and a syscall round
//! trip from user mode (the `syscall-bench` program).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::arch::vectors::{BENCH_NOSWITCH_VECTOR, BENCH_SWITCH_VECTOR};
use crate::arch::{apic, cpu, irq};
use crate::sched;
use crate::shell::cmdline::ArgError;
use crate::shell::commands::{CmdError, CmdResult};
use crate::stacks::info;
use crate::time::{self, spin_until, SPIN_WAIT_MS};
use crate::{println, smp};

/// The two `bench irq` vectors' handler.
pub fn init() {
    irq::register(BENCH_SWITCH_VECTOR, bench_handler, "LAPIC  self-IPI bench (IRQ stack)");
    irq::register(BENCH_NOSWITCH_VECTOR, bench_handler, "LAPIC  self-IPI bench (no switch)");
}

// --- bench ------------------------------------------------------------------------

const BENCH_SAMPLES: usize = 2000;
const SPAWN_SAMPLES: usize = 300;
static PINGPONG_RUN: AtomicU64 = AtomicU64::new(0);

fn partner(_: u64) -> i64 {
    while PINGPONG_RUN.load(Ordering::SeqCst) != 0 {
        sched::yield_now();
    }
    0
}

fn noop(_: u64) -> i64 {
    0
}

fn report(what: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    println!(
        "bench {what}: min {} cycles, median {} cycles ({} samples, TSC {} kHz)",
        samples[0],
        samples[samples.len() / 2],
        samples.len(),
        time::tsc_per_ms()
    );
}

pub fn bench(args: &[&str]) -> CmdResult {
    let fail = |e: crate::mm::vmap::VmapError| CmdError::Failed(alloc::format!("{e}"));
    match args {
        ["switch"] => {
            PINGPONG_RUN.store(1, Ordering::SeqCst);
            // On this CPU: the round trip is two switches here, not two CPUs.
            let here = sched::Placement::Pinned(percpu::current_cpu_id());
            let pid = sched::spawn_on("bench-partner", partner, 0, here).map_err(fail)?;
            sched::yield_now(); // let the partner reach its loop
            let samples = (0..BENCH_SAMPLES)
                .map(|_| {
                    let t0 = time::rdtsc();
                    sched::yield_now(); // to the partner and back: two switches
                    time::rdtsc() - t0
                })
                .collect();
            PINGPONG_RUN.store(0, Ordering::SeqCst);
            let _ = sched::join(pid);
            report("switch (yield round trip = 2 context switches)", samples);
            Ok(())
        }
        ["spawn"] => {
            let mut samples = Vec::new();
            for _ in 0..SPAWN_SAMPLES {
                let t0 = time::rdtsc();
                let pid = sched::spawn_on("bench-noop", noop, 0, sched::Placement::Pinned(percpu::current_cpu_id()))
                    .map_err(fail)?;
                let _ = sched::join(pid);
                samples.push(time::rdtsc() - t0);
            }
            report("spawn (spawn + run + exit + join, stack from the cache)", samples);
            Ok(())
        }
        ["irq"] => bench_irq(),
        ["ipi"] => bench_ipi(),
        // Measured in user mode by the program itself (RDTSC around getpid).
        ["syscall"] => super::user::start("syscall-bench", "2000", false),
        _ => Err(ArgError("bench: usage: bench switch|spawn|irq|ipi|syscall".into()).into()),
    }
}

// --- bench irq -----------------------------------------------------------------

static BENCH_HITS: AtomicU32 = AtomicU32::new(0);
static BENCH_STACK_IRQ: AtomicU32 = AtomicU32::new(0);

fn bench_handler(_regs: &mut Regs) {
    if info::name_of(cpu::stack_pointer()) == "IRQ" {
        BENCH_STACK_IRQ.fetch_add(1, Ordering::Relaxed);
    }
    BENCH_HITS.fetch_add(1, Ordering::SeqCst);
}

const BENCH_IRQ_SAMPLES: usize = 2000;

/// Self-IPI round trips through both stubs, alternating, same boot.
fn bench_irq() -> CmdResult {
    let mut with_switch = Vec::with_capacity(BENCH_IRQ_SAMPLES);
    let mut without = Vec::with_capacity(BENCH_IRQ_SAMPLES);
    BENCH_STACK_IRQ.store(0, Ordering::SeqCst);
    for _ in 0..BENCH_IRQ_SAMPLES {
        for (vector, out) in [(BENCH_NOSWITCH_VECTOR, &mut without), (BENCH_SWITCH_VECTOR, &mut with_switch)] {
            let before = BENCH_HITS.load(Ordering::SeqCst);
            let t0 = time::rdtsc();
            apic::send_self_ipi(vector);
            if !spin_until(SPIN_WAIT_MS, || BENCH_HITS.load(Ordering::SeqCst) > before) {
                return Err(CmdError::Failed(alloc::format!("self-IPI {vector:#x} never arrived")));
            }
            out.push(time::rdtsc() - t0);
        }
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        (v[0], v[v.len() / 2])
    };
    let (smin, smed) = median(&mut with_switch);
    let (nmin, nmed) = median(&mut without);
    println!("bench irq: self-IPI round trip via the IRQ stack: min {smin} cycles, median {smed} cycles ({BENCH_IRQ_SAMPLES} samples)");
    println!("bench irq: same, no stack switch:                 min {nmin} cycles, median {nmed} cycles ({BENCH_IRQ_SAMPLES} samples)");
    println!(
        "bench irq: median ratio switch/no-switch {}.{:03}; handlers that ran on the IRQ stack: {} of {} (TSC {} kHz)",
        smed / nmed.max(1),
        (smed % nmed.max(1)) * 1000 / nmed.max(1),
        BENCH_STACK_IRQ.load(Ordering::SeqCst),
        2 * BENCH_IRQ_SAMPLES,
        time::tsc_per_ms()
    );
    Ok(())
}

// --- bench ipi -----------------------------------------------------------------

fn nothing(_: u64) {}

/// `bench ipi`: a function-call IPI to the next CPU and back (send, its
/// handler runs on its IRQ stack, we see the count): the cost of every
/// TLB shoot-down per target CPU.
fn bench_ipi() -> CmdResult {
    const SAMPLES: usize = 2000;
    let me = this_cpu().id();
    let Some(target) = percpu::online_cpus().find(|&c| c != me) else {
        return Err(CmdError::Failed("needs at least 2 CPUs (boot with --smp 2 or more)".into()));
    };
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t0 = time::rdtsc();
        if smp::call_on(core::iter::once(target), nothing, 0) != 1 {
            return Err(CmdError::Failed(alloc::format!("CPU {target} is not online")));
        }
        samples.push(time::rdtsc() - t0);
    }
    report(&alloc::format!("ipi (function call CPU {me} -> CPU {target} and back)"), samples);
    Ok(())
}
