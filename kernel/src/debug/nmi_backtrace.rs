//! Backtraces of other CPUs, taken by NMI (Linux `lib/nmi_backtrace.c`,
//! `arch/x86/kernel/apic/hw_nmi.c`), and stopping them when the kernel dies.
//!
//! An NMI reaches a CPU whatever it is doing — interrupts off, spinning on a
//! lock, deep in an IRQ handler — which is why `bt-all` and a dying kernel
//! use it. The requesting CPU sets a bit per target in `PENDING` and sends
//! the NMIs; each target's NMI handler prints its trace (one CPU at a time,
//! under `PRINT_LOCK`), clears its bit and either returns (`bt-all`) or
//! parks for good (`stop`: the kernel is dying). The requester waits for the
//! bits, at most `WAIT_MS`, and never holds the print lock while it waits.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu;
use crate::{println, smp, time};

/// Bit n: CPU n still has to print its backtrace.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Park after printing (the kernel is dying).
static STOP: AtomicBool = AtomicBool::new(false);
/// CPU id + 1 of the CPU printing an NMI backtrace, 0 when free.
static PRINT_LOCK: AtomicU64 = AtomicU64::new(0);
/// How long the requester waits for every CPU (Linux waits 10 s).
const WAIT_MS: u64 = 10_000;

/// "1-3" / "1,3" for a list of CPU numbers (Linux `%*pbl`).
fn cpu_list(cpus: &[usize]) -> alloc::string::String {
    let mut out = alloc::string::String::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&if j > i { alloc::format!("{}-{}", cpus[i], cpus[j]) } else { alloc::format!("{}", cpus[i]) });
        i = j + 1;
    }
    out
}

/// This CPU's own entry of `bt-all` (Linux prints the requester's trace
/// directly, not by NMI).
pub fn print_own_backtrace() {
    let me = percpu::current_cpu_id();
    println!("NMI backtrace for cpu {me}");
    print_task_line(me);
    super::backtrace::print_trace(crate::arch::cpu::stack_pointer(), crate::arch::cpu::frame_pointer());
}

fn print_task_line(me: usize) {
    match crate::sched::current() {
        Some(t) => println!("CPU: {me} PID: {} Comm: {:.20}", t.pid, t.name),
        None => println!("CPU: {me} PID: 0 Comm: swapper/{me}"),
    }
}

/// NMI every other online CPU and have each print `NMI backtrace for cpu N`
/// and its trace; with `stop`, each then parks forever. Returns the CPUs
/// that did not answer within `WAIT_MS`.
pub fn trigger_all_cpu_backtrace(stop: bool) -> alloc::vec::Vec<usize> {
    let me = percpu::current_cpu_id();
    let others: alloc::vec::Vec<usize> = percpu::online_cpus().filter(|&c| c != me).collect();
    if others.is_empty() {
        return others;
    }
    let mask = others.iter().fold(0u64, |m, &c| m | 1 << c);
    // Another CPU's request still in flight: add ours (bits are per target).
    STOP.fetch_or(stop, Ordering::SeqCst);
    PENDING.fetch_or(mask, Ordering::SeqCst);
    println!("Sending NMI from CPU {me} to CPUs {}:", cpu_list(&others));
    for &c in &others {
        smp::send_nmi(c);
    }
    let deadline = time::rdtsc() + time::tsc_per_ms().max(1) * WAIT_MS;
    while PENDING.load(Ordering::SeqCst) & mask != 0 && time::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    let missing: alloc::vec::Vec<usize> =
        others.into_iter().filter(|&c| PENDING.load(Ordering::SeqCst) & (1 << c) != 0).collect();
    if !missing.is_empty() {
        PENDING.fetch_and(!mask, Ordering::SeqCst);
        println!("NMI backtrace: CPUs {} did not answer within {WAIT_MS} ms", cpu_list(&missing));
    }
    missing
}

/// From the NMI handler: if this CPU owes a backtrace, print it (and park,
/// if the kernel is dying). Returns whether it did.
pub fn nmi_cpu_backtrace() -> bool {
    let me = percpu::current_cpu_id();
    if PENDING.load(Ordering::SeqCst) & (1 << me) == 0 {
        return false;
    }
    while PRINT_LOCK.compare_exchange(0, me as u64 + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    println!("NMI backtrace for cpu {me}");
    print_task_line(me);
    // From here, on the NMI stack: the trace shows <NMI>, then whatever it
    // interrupted (an IRQ stack, an #DB stack, a task).
    super::backtrace::print_trace(crate::arch::cpu::stack_pointer(), crate::arch::cpu::frame_pointer());
    PRINT_LOCK.store(0, Ordering::Release);
    let stop = STOP.load(Ordering::SeqCst);
    PENDING.fetch_and(!(1 << me), Ordering::SeqCst);
    if stop {
        // No IRET: NMIs stay blocked, interrupts are off. This CPU is done.
        crate::arch::cpu::halt_forever();
    }
    true
}
