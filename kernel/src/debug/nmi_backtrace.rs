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

/// A set of CPUs as a bit mask, printed "1-3" / "0,2-3" (Linux `%*pbl`).
/// No allocation: the dying path uses it.
#[derive(Clone, Copy)]
struct CpuList(u64);

impl core::fmt::Display for CpuList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut first = true;
        let mut cpu = 0;
        while cpu < 64 {
            if self.0 & (1 << cpu) == 0 {
                cpu += 1;
                continue;
            }
            let start = cpu;
            while cpu + 1 < 64 && self.0 & (1 << (cpu + 1)) != 0 {
                cpu += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if cpu > start {
                write!(f, "{start}-{cpu}")?;
            } else {
                write!(f, "{start}")?;
            }
            cpu += 1;
        }
        Ok(())
    }
}

/// This CPU's own entry of `bt-all` (Linux prints the requester's trace
/// directly, not by NMI).
pub fn print_own_backtrace() {
    let me = percpu::current_cpu_id();
    println!("NMI backtrace for cpu {me}");
    super::oops::print_cpu_line();
    super::backtrace::print_trace(crate::arch::cpu::stack_pointer(), crate::arch::cpu::frame_pointer());
}

/// NMI every other online CPU and have each print `NMI backtrace for cpu N`
/// and its trace; with `stop`, each then parks forever. Returns the mask of
/// CPUs that did not answer within `WAIT_MS` (0: all did). Allocates
/// nothing: the oops and panic paths call it.
pub fn trigger_all_cpu_backtrace(stop: bool) -> u64 {
    let me = percpu::current_cpu_id();
    let mask = percpu::online_cpus().filter(|&c| c != me).fold(0u64, |m, c| m | 1 << c);
    if mask == 0 {
        return 0;
    }
    // Another CPU's request may still be in flight: add ours (bits are per target).
    STOP.fetch_or(stop, Ordering::SeqCst);
    PENDING.fetch_or(mask, Ordering::SeqCst);
    println!("Sending NMI from CPU {me} to CPUs {}:", CpuList(mask));
    for c in (0..64).filter(|c| mask & (1 << c) != 0) {
        smp::send_nmi(c);
    }
    time::spin_until(WAIT_MS, || PENDING.load(Ordering::SeqCst) & mask == 0);
    let missing = PENDING.fetch_and(!mask, Ordering::SeqCst) & mask;
    if missing != 0 {
        println!("NMI backtrace: CPUs {} did not answer within {WAIT_MS} ms", CpuList(missing));
    }
    missing
}

/// Hook this module into the NMI handler (Linux registers
/// `nmi_cpu_backtrace_handler` the same way).
pub fn init() {
    crate::arch::nmi::register_nmi_handler(nmi_cpu_backtrace);
}

/// From the NMI handler: if this CPU owes a backtrace, print it (and park,
/// if the kernel is dying).
fn nmi_cpu_backtrace(_: &crate::arch::regs::Regs) {
    let me = percpu::current_cpu_id();
    if PENDING.load(Ordering::SeqCst) & (1 << me) == 0 {
        return;
    }
    while PRINT_LOCK.compare_exchange(0, me as u64 + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    println!("NMI backtrace for cpu {me}");
    super::oops::print_cpu_line();
    // From here, on the NMI stack: the trace shows <NMI>, then whatever it
    // interrupted (an IRQ stack, an #DB stack, a task).
    super::backtrace::print_trace(crate::arch::cpu::stack_pointer(), crate::arch::cpu::frame_pointer());
    PRINT_LOCK.store(0, Ordering::Release);
    let stop = STOP.load(Ordering::SeqCst);
    PENDING.fetch_and(!(1 << me), Ordering::SeqCst);
    if stop {
        // No IRET: NMIs stay blocked, interrupts are off. This CPU is done;
        // the print it interrupted never finishes.
        crate::console::release_if_mine();
        crate::arch::cpu::halt_forever();
    }
}
