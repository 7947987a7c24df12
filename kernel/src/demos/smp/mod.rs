//! More than one CPU (docs/smp.md): `cpus`, `bt-all`, `tlb-shootdown`,
//! `bench ipi`. `nmi-storm` has its own file.

pub mod nmi_storm;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu::{self, this_cpu};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::debug::nmi_backtrace;
use crate::layout::{Ist, MAX_CPUS, PAGE_SIZE};
use crate::mm::vmalloc;
use crate::sched::{self, Ended, Placement};
use crate::smp::tlb;
use crate::{println, smp};

/// `cpus`: every CPU the MADT lists: the online ones with their per-CPU
/// stacks, then any that are not online and why.
pub fn cpus(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!(
        "CPU APIC state   IRQ stack top    #DF top          NMI top          #DB top          #MC top          current"
    );
    for cpu in percpu::online_cpus() {
        let p = percpu::of(cpu);
        let current = sched::snapshot()
            .into_iter()
            .find(|t| t.cpu == cpu && t.state == sched::State::Running)
            .map_or_else(|| "-".into(), |t| alloc::format!("{} ({})", t.name, t.pid));
        println!(
            "{cpu:>3} {:>4} online  {:016x} {:016x} {:016x} {:016x} {:016x} {current}",
            p.apic_id.load(Ordering::Relaxed),
            crate::stacks::irq::range(cpu).map_or(0, |r| r.1),
            p.ist(Ist::DF),
            p.ist(Ist::NMI),
            p.ist(Ist::DB),
            p.ist(Ist::MCE),
        );
    }
    for (apic_id, why) in smp::bringup::not_online() {
        println!("  - {apic_id:>4} offline  ({why})");
    }
    Ok(())
}

/// `chatter MS`: a thread prints a line in a loop for MS milliseconds, so
/// that another CPU's NMI (`bt-all`) or a panic finds the console taken.
/// Ctrl-C stops it early.
pub fn chatter(args: &[&str]) -> CmdResult {
    let [ms] = args else {
        return Err(ArgError::usage_and(" (1 to 60000)").into());
    };
    let ms = cmdline::number("MS", ms, 1..=60_000)?;
    let pid = sched::spawn("chatter", chatter_thread, ms).map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
    println!("chatter: pid {pid} prints for {ms} ms");
    Ok(())
}

fn chatter_thread(ms: u64) -> i64 {
    let end = crate::time::rdtsc() + crate::time::tsc_per_ms() * ms;
    let interrupt = crate::tty::Interrupt::mark();
    let mut n = 0u64;
    while crate::time::rdtsc() < end {
        if interrupt.pending() {
            println!("chatter: stopped by Ctrl-C after {n} lines");
            return 1;
        }
        n += 1;
        println!("chatter: line {n} from CPU {}", this_cpu().id());
    }
    0
}

/// `bt-all`: this CPU's backtrace, then every other CPU's, taken by NMI
/// (Linux sysrq-l, `trigger_all_cpu_backtrace`).
pub fn bt_all(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    nmi_backtrace::print_own_backtrace();
    let missing = nmi_backtrace::trigger_all_cpu_backtrace(false);
    if missing == 0 {
        Ok(())
    } else {
        Err(CmdError::Failed(alloc::format!("{} CPU(s) did not answer the NMI", missing.count_ones())))
    }
}

/// `bt-ipi CPU`: CPU's backtrace taken in a function-call IPI handler — an
/// ordinary interrupt, so it runs on that CPU's IRQ stack whatever it
/// interrupted: the trace shows `<IRQ>` … `</IRQ>`, then the interrupted
/// thread's stack, and, if that thread was in user mode (or in a syscall),
/// the user registers.
pub fn bt_ipi(args: &[&str]) -> CmdResult {
    let [cpu] = args else {
        return Err(ArgError::usage().into());
    };
    let cpu = cmdline::number("CPU", cpu, 0..=(MAX_CPUS as u64 - 1))? as usize;
    if !percpu::is_online(cpu) {
        return Err(ArgError::Invalid(alloc::format!("CPU {cpu} is not online")).into());
    }
    if cpu == percpu::current_cpu_id() {
        return Err(ArgError::Invalid(alloc::format!("CPU {cpu} is this CPU; use bt")).into());
    }
    smp::call_on(core::iter::once(cpu), ipi_backtrace, 0);
    Ok(())
}

fn ipi_backtrace(_: u64) {
    println!("IPI backtrace for cpu {}", percpu::current_cpu_id());
    crate::debug::oops::print_cpu_line();
    crate::debug::backtrace::print_trace(crate::arch::cpu::stack_pointer(), crate::arch::cpu::frame_pointer());
}

// --- tlb-shootdown ---------------------------------------------------------------

static TLB_PAGE: AtomicU64 = AtomicU64::new(0);
static TLB_READY: AtomicBool = AtomicBool::new(false);
static TLB_FREED: AtomicBool = AtomicBool::new(false);
/// The value the reader saw after the free (if it saw one at all).
static TLB_STALE_READ: AtomicU64 = AtomicU64::new(0);
const TLB_MAGIC: u64 = 0x0007_1b55_700d;

fn tlb_reader(_: u64) -> i64 {
    let p = TLB_PAGE.load(Ordering::SeqCst) as *const u64;
    // Cache the translation in this CPU's TLB, then keep it warm.
    // SAFETY: mapped until TLB_FREED; after that this read is the point of
    // the demo: it must fault (the oops kills this thread).
    let mut seen = unsafe { p.read_volatile() };
    TLB_READY.store(true, Ordering::SeqCst);
    while !TLB_FREED.load(Ordering::SeqCst) {
        // SAFETY: as above.
        seen = unsafe { p.read_volatile() };
    }
    // Read at once: the longer we wait, the likelier something else (any
    // TLB flush on this CPU) drops the stale entry `skip` wants to show.
    // SAFETY: as above.
    let after = unsafe { p.read_volatile() };
    TLB_STALE_READ.store(after, Ordering::SeqCst);
    println!("tlb-shootdown: CPU {} still read {after:#x} through a stale TLB entry (was {seen:#x})", this_cpu().id());
    0
}

/// `tlb-shootdown CPU [skip]`: a thread on CPU reads a vmalloc page in a
/// loop; this CPU vfree()s it; the reader's next read must fault. With
/// `skip` the shoot-down is left out, to show what it prevents: the reader
/// goes on reading the freed frame through its stale TLB entry.
pub fn tlb_shootdown(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage_and(" (CPU: another online CPU)");
    let (cpu, skip) = match args {
        [cpu] => (cpu, false),
        [cpu, "skip"] => (cpu, true),
        _ => return Err(usage().into()),
    };
    let cpu = cmdline::number("CPU", cpu, 0..=MAX_CPUS as u64 - 1)? as usize;
    let me = this_cpu().id();
    if cpu == me || !percpu::is_online(cpu) {
        return Err(ArgError::Invalid(alloc::format!("CPU {cpu} must be online and not this CPU ({me})")).into());
    }
    let fail = |e| CmdError::Failed(alloc::format!("{e}"));
    let page = vmalloc::vmalloc_guarded(PAGE_SIZE, PAGE_SIZE, vmalloc::ONE_PAGE_GUARDS).map_err(fail)?;
    // SAFETY: just mapped, ours.
    unsafe { (page.start as *mut u64).write_volatile(TLB_MAGIC) };
    TLB_PAGE.store(page.start, Ordering::SeqCst);
    TLB_READY.store(false, Ordering::SeqCst);
    TLB_FREED.store(false, Ordering::SeqCst);
    TLB_STALE_READ.store(0, Ordering::SeqCst);
    let before = tlb::tlb_shootdowns(cpu);
    let pid = sched::spawn_on("tlb-reader", tlb_reader, 0, Placement::Pinned(cpu)).map_err(fail)?;
    while !TLB_READY.load(Ordering::SeqCst) {
        sched::yield_now();
    }
    tlb::SKIP_SHOOTDOWN.store(skip, Ordering::SeqCst);
    let freed = vmalloc::vfree(page.start);
    tlb::SKIP_SHOOTDOWN.store(false, Ordering::SeqCst);
    freed.map_err(fail)?;
    TLB_FREED.store(true, Ordering::SeqCst);
    let shot = tlb::tlb_shootdowns(cpu) - before;
    println!("tlb-shootdown: freed {:#x} on CPU {me}; CPU {cpu} flushed it {shot} time(s)", page.start);
    let ended = sched::join(pid);
    match ended {
        Ok(Ended::Killed) if shot >= 1 => {
            println!("tlb-shootdown: ok, the reader on CPU {cpu} faulted instead of reading freed memory");
            Ok(())
        }
        Ok(Ended::Exited(0)) if skip && shot == 0 => {
            println!("tlb-shootdown: without the shoot-down, CPU {cpu} read freed memory: this is the bug it prevents");
            Ok(())
        }
        // Nothing guarantees a stale entry survives (any flush on that CPU
        // drops it, and QEMU flushes for its own reasons too); the
        // shoot-down is what guarantees none does.
        Ok(Ended::Killed) if skip && shot == 0 => {
            println!("tlb-shootdown: without the shoot-down, CPU {cpu} faulted anyway: its TLB entry was gone before the read (try again)");
            Ok(())
        }
        other => Err(CmdError::Failed(alloc::format!(
            "reader {}, read {:#x} after the free, {shot} shoot-down(s)",
            sched::describe(&other),
            TLB_STALE_READ.load(Ordering::SeqCst)
        ))),
    }
}
