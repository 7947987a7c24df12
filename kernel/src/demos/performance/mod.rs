//! `bench [NAME|all]` (docs/performance.md): what each kernel path costs per operation, min and
//! median, beside the physical minimum of that operation and the ratio.
//!
//! Under the runner's `--icount` (QEMU `-icount shift=0`) the TSC counts
//! instructions, so every figure is an instruction count and repeats
//! exactly from boot to boot (docs/performance.md). Each sample is one
//! operation between two RDTSCs, less what an empty measurement costs.
//! Entries are made synchronously (`int N` through the real stubs) so the
//! emulator's interrupt-delivery latency is not in the figure.

mod dynamic;
mod entries;

use entries::{
    bench_debug_hook, bench_exceptions, bench_ipi, bench_irq, bench_irq_handler, bench_syscall, bench_tracer,
    bench_user_yield,
};

use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::debug::{self, DebugEvent, DebugKind};
use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::arch::vectors::{BENCH_NOSWITCH_VECTOR, BENCH_SWITCH_VECTOR};
use crate::arch::{cpu, irq};
use crate::cmd::cmdline::ArgError;
use crate::cmd::{CmdError, CmdResult};
use crate::stacks::{info, thread};
use crate::{println, sched, smp, time};

/// The two `bench irq` vectors' handler, and the hook that claims the
/// benchmark's own `int3` and `int 1`.
pub fn init() {
    irq::register(BENCH_SWITCH_VECTOR, bench_irq_handler, "bench: int through the IRQ-stack stub");
    irq::register(BENCH_NOSWITCH_VECTOR, bench_irq_handler, "bench: int through the no-switch stub");
    debug::register_debug_hook(bench_debug_hook);
}

const SAMPLES: usize = 2000;
const SPAWN_SAMPLES: usize = 300;

/// A benchmark's name and what runs it.
type Benchmark = (&'static str, fn() -> CmdResult);

pub fn bench(args: &[&str]) -> CmdResult {
    let which = match args {
        [] | ["all"] => None,
        [one] => Some(*one),
        _ => return Err(ArgError::usage().into()),
    };
    let all: [Benchmark; 9] = [
        ("switch", bench_switch),
        ("spawn", bench_spawn),
        ("irq", bench_irq),
        ("exceptions", bench_exceptions),
        ("ipi", bench_ipi),
        ("syscall", bench_syscall),
        ("yield-user", bench_user_yield),
        ("tracer", bench_tracer),
        // Last: it arms dynamic stacks, which moves the IRQ gates.
        ("dynamic", dynamic::bench_dynamic),
    ];
    if let Some(w) = which {
        if !all.iter().any(|(n, _)| *n == w) {
            return Err(ArgError::Wrong(alloc::format!("unknown benchmark '{w}'")).into());
        }
    }
    header();
    let busy = keep_other_cpus_busy()?;
    let result = all.iter().filter(|(name, _)| which.is_none_or(|w| w == *name)).try_for_each(|(_, run)| run());
    BUSY.store(false, Ordering::SeqCst);
    for pid in busy {
        let _ = sched::join(pid);
    }
    result
}

/// While set, a thread on every other CPU spins.
static BUSY: AtomicBool = AtomicBool::new(false);

fn busy(_: u64) -> i64 {
    while BUSY.load(Ordering::Relaxed) {
        core::hint::spin_loop();
    }
    0
}

/// A spinning thread on every other CPU for the benchmarks' duration. Under
/// QEMU's instruction counter an idle (halted) CPU lets virtual time jump
/// by the host's clock; with none idle, the figures come from counted
/// instructions and repeat from boot to boot (docs/performance.md).
/// Only under the counter: elsewhere the figures vary anyway, and spinning
/// vCPUs would take the host's cores from the one being measured.
fn keep_other_cpus_busy() -> Result<Vec<u32>, CmdError> {
    if clock().as_deref() != Some(b"instructions") {
        return Ok(Vec::new());
    }
    BUSY.store(true, Ordering::SeqCst);
    let me = this_cpu().id();
    let mut pids = Vec::new();
    for cpu in percpu::online_cpus().filter(|&c| c != me) {
        match sched::spawn_on("bench-busy", busy, 0, sched::Placement::Pinned(cpu)) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                BUSY.store(false, Ordering::SeqCst);
                for p in pids {
                    let _ = sched::join(p);
                }
                return Err(failed(e));
            }
        }
    }
    Ok(pids)
}

// --- Measuring and printing ----------------------------------------------------

/// What the runner said the TSC counts (fw_cfg `opt/tristack/clock`).
fn clock() -> Option<alloc::vec::Vec<u8>> {
    crate::drivers::fw_cfg::read_file("opt/tristack/clock")
}

/// Under KVM the synchronous entries are not made: on the machines this
/// was written on, nested KVM stopped the guest at the first `int 0x47`
/// ("KVM internal error. Suberror: 1 ... emulation failure").
fn skipped_under_kvm(what: &str) -> bool {
    let kvm = clock().as_deref() == Some(b"kvm");
    if kvm {
        println!("bench: {what:<58} (not run under KVM: nested KVM failed to emulate `int N`, docs/performance.md)");
    }
    kvm
}

/// What the TSC counts in this boot, as the runner said through fw_cfg.
fn unit() -> &'static str {
    match clock().as_deref() {
        Some(b"instructions") => "instructions (QEMU -icount shift=0: the TSC counts instructions)",
        Some(b"tcg") => "TSC cycles of QEMU TCG (emulator wall time: figures vary from run to run)",
        Some(b"kvm") => "TSC cycles under KVM (the host CPU's clock)",
        _ => "TSC cycles (started without the runner's clock note)",
    }
}

/// RDTSC around nothing: taken off every sample.
fn empty_measurement() -> u64 {
    (0..64)
        .map(|_| {
            let t0 = time::rdtsc();
            time::rdtsc() - t0
        })
        .min()
        .unwrap_or(0)
}

fn header() {
    println!("bench: unit: {}; an empty measurement ({}) is taken off each sample", unit(), empty_measurement());
    println!("bench: {:<58} {:>8} {:>8} {:>8} {:>7}", "operation", "min", "median", "minimum", "ratio");
}

/// One row: min and median of `samples` (less the empty measurement), the
/// physical minimum of the operation, and median / minimum.
fn row(what: &str, mut samples: Vec<u64>, minimum: u64) {
    let empty = empty_measurement();
    samples.iter_mut().for_each(|s| *s = s.saturating_sub(empty));
    samples.sort_unstable();
    let (min, median) = (samples[0], samples[samples.len() / 2]);
    let ratio = median * 10 / minimum.max(1);
    println!("bench: {what:<58} {min:>8} {median:>8} {minimum:>8} {:>5}.{}", ratio / 10, ratio % 10);
}

fn timed(n: usize, mut op: impl FnMut()) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let t0 = time::rdtsc();
            op();
            time::rdtsc() - t0
        })
        .collect()
}

fn failed(e: impl core::fmt::Display) -> CmdError {
    CmdError::Failed(alloc::format!("bench: {e}"))
}

// --- The physical minima ----------------------------------------------------------
//
// The instructions of the shortest path that could do the job at all, counted
// by hand (docs/performance.md says why each is what it is).

/// A bare switch: `call`, push the six callee-saved registers, store RSP,
/// load the next RSP, pop six, `ret` — twice for a round trip.
const MIN_SWITCH_ROUND_TRIP: u64 = 2 * (1 + 6 + 1 + 1 + 6 + 1);
/// Spawn + run + exit + join: every word of the 16 KiB stack touched once,
/// 8 bytes at a time (THREAD_SIZE / 8: what the last thread used is zeroed,
/// the rest is checked to be still zero by the usage scan), the 8-word
/// first frame, two switches there and back. A stack that is not cached
/// also needs its 4 page-table entries.
const MIN_SPAWN: u64 = crate::layout::THREAD_SIZE / 8 + 8 + MIN_SWITCH_ROUND_TRIP;
/// What each page of the stack adds to `MIN_SPAWN` (its words touched once).
const MIN_SPAWN_PAGE: u64 = crate::layout::PAGE_SIZE / 8;
const MIN_SPAWN_COLD: u64 = MIN_SPAWN + crate::layout::THREAD_SIZE / crate::layout::PAGE_SIZE;
/// An interrupt into a Rust handler: `int`, save the nine caller-saved
/// registers, call and return from an empty handler, restore nine, `iretq`.
const MIN_INTERRUPT: u64 = 1 + 9 + 2 + 9 + 1;
/// The nest-counter switch on top: `inc`, `jnz`, `mov rsp`, push the old
/// RSP, `pop rsp`, `dec`.
const MIN_IRQ_SWITCH: u64 = MIN_INTERRUPT + 6;
/// The #DB stack's IST shift on top: `sub` and `add` of TSS IST[DB].
const MIN_DB: u64 = MIN_INTERRUPT + 2;
/// A cross-CPU call: write the ICR, the remote CPU's interrupt (with its
/// EOI and the store of the done flag), read the flag back.
const MIN_IPI: u64 = 1 + MIN_INTERRUPT + 2 + 1;

// --- switch, spawn ----------------------------------------------------------------

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

fn here() -> sched::Placement {
    sched::Placement::Pinned(percpu::current_cpu_id())
}

/// Two threads on this CPU yielding to each other: two context switches.
fn yield_round_trips() -> Result<Vec<u64>, CmdError> {
    PINGPONG_RUN.store(1, Ordering::SeqCst);
    let pid = sched::spawn_on("bench-partner", partner, 0, here()).map_err(failed)?;
    sched::yield_now(); // let the partner reach its loop
    let samples = timed(SAMPLES, sched::yield_now);
    PINGPONG_RUN.store(0, Ordering::SeqCst);
    let _ = sched::join(pid);
    Ok(samples)
}

fn bench_switch() -> CmdResult {
    row("yield round trip (2 context switches)", yield_round_trips()?, MIN_SWITCH_ROUND_TRIP);
    Ok(())
}

fn spawn_join() -> Result<(), CmdError> {
    let pid = sched::spawn_on("bench-noop", noop, 0, here()).map_err(failed)?;
    sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))?;
    Ok(())
}

/// `spawn_join` timed with a stack from the cache, then (cache emptied)
/// with a new stack mapped, `SPAWN_SAMPLES` times each.
fn hot_and_cold(spawn_join: fn() -> Result<(), CmdError>) -> Result<(Vec<u64>, Vec<u64>), CmdError> {
    let mut hot = Vec::with_capacity(SPAWN_SAMPLES);
    let mut cold = Vec::with_capacity(SPAWN_SAMPLES);
    for _ in 0..SPAWN_SAMPLES {
        let t0 = time::rdtsc();
        spawn_join()?;
        hot.push(time::rdtsc() - t0);
        // Empty this CPU's stack cache: the next spawn maps a new stack.
        thread::drain_cache();
        let t0 = time::rdtsc();
        spawn_join()?;
        cold.push(time::rdtsc() - t0);
    }
    Ok((hot, cold))
}

fn bench_spawn() -> CmdResult {
    let (hot, cold) = hot_and_cold(spawn_join)?;
    row("spawn + run + exit + join (cached stack)", hot, MIN_SPAWN);
    row("spawn + run + exit + join (new stack mapped)", cold, MIN_SPAWN_COLD);
    Ok(())
}
