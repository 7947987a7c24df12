//! Commands about CPUs: `cpus`, `bt-all`, `nmi-storm`, `tlb-shootdown`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::cmdline::{self, ArgError};
use super::commands::{CmdError, CmdResult};
use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::arch::{apic, irq};
use crate::debug::nmi_backtrace;
use crate::mm::vmalloc;
use crate::sched::{self, Ended, Placement};
use crate::stacks::layout::{estack_range, EStack, Ist, MAX_CPUS, PAGE_SIZE};
use crate::{println, smp, time};

/// `cpus`: every CPU the MADT lists: the online ones with their per-CPU
/// stacks, then any that are not online and why.
pub fn cpus(args: &[&str]) -> CmdResult {
    cmdline::no_args("cpus", args)?;
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
    for (apic_id, why) in smp::not_online() {
        println!("  - {apic_id:>4} offline  ({why})");
    }
    Ok(())
}

/// `bt-all`: this CPU's backtrace, then every other CPU's, taken by NMI
/// (Linux sysrq-l, `trigger_all_cpu_backtrace`).
pub fn bt_all(args: &[&str]) -> CmdResult {
    cmdline::no_args("bt-all", args)?;
    nmi_backtrace::print_own_backtrace();
    let missing = nmi_backtrace::trigger_all_cpu_backtrace(false);
    if missing == 0 {
        Ok(())
    } else {
        Err(CmdError::Failed(alloc::format!("{} CPU(s) did not answer the NMI", missing.count_ones())))
    }
}

// --- bench ipi -----------------------------------------------------------------

fn nothing(_: u64) {}

/// `bench ipi`: a function-call IPI to the next CPU and back (send, its
/// handler runs on its IRQ stack, we see the count): the cost of every
/// TLB shoot-down per target CPU.
pub fn bench_ipi() -> CmdResult {
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
    super::thread_cmds::report(&alloc::format!("ipi (function call CPU {me} -> CPU {target} and back)"), samples);
    Ok(())
}

// --- nmi-storm -----------------------------------------------------------------

use crate::arch::vectors::NMI_STORM_VECTOR as STORM_IRQ_VECTOR;

static STORM_ACTIVE: AtomicBool = AtomicBool::new(false);
static STORM_STOP: AtomicBool = AtomicBool::new(false);
/// Per CPU: storm self-IPIs handled, and those that ran off the IRQ stack.
static STORM_IRQS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static STORM_IRQS_MISPLACED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Where the storm's NMIs landed, per CPU: what the interrupted RSP was on,
/// and whether RIP was inside the context switch or the IRQ entry code.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Landed {
    Task,
    IrqStack,
    DbStack,
    Db1Stack,
    SwitchTo,
    IrqEntry,
}
const LANDED_NAMES: [&str; 6] =
    ["task stack", "IRQ stack", "#DB stack", "#DB1 stack", "in switch_to", "in IRQ entry code"];
static LANDED: [[AtomicU64; 6]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 6] }; MAX_CPUS];

/// Register the storm's vector.
pub fn init() {
    irq::register(STORM_IRQ_VECTOR, storm_irq, "LAPIC  self-IPI nmi-storm");
}

fn storm_irq(_: &mut Regs) {
    let cpu = this_cpu().id();
    let sp = crate::arch::cpu::stack_pointer();
    if !crate::stacks::irq::range(cpu).is_some_and(|(b, t)| (b..t).contains(&sp)) {
        STORM_IRQS_MISPLACED[cpu].fetch_add(1, Ordering::Relaxed);
    }
    STORM_IRQS[cpu].fetch_add(1, Ordering::SeqCst);
}

/// From the NMI handler while a storm runs: note where this NMI landed.
/// Atomics and reads of fixed tables only (NMI context).
pub fn nmi_storm_hit(regs: &Regs) {
    if !STORM_ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let cpu = this_cpu().id();
    let within = |(b, t): (u64, u64)| (b..t).contains(&regs.rsp);
    let on = if within(estack_range(cpu, EStack::DB)) {
        Landed::DbStack
    } else if within(estack_range(cpu, EStack::DB1)) {
        Landed::Db1Stack
    } else if crate::stacks::irq::range(cpu).is_some_and(within) {
        Landed::IrqStack
    } else {
        Landed::Task
    };
    LANDED[cpu][on as usize].fetch_add(1, Ordering::Relaxed);
    if let Some(r) = crate::debug::symbols::resolve(regs.rip) {
        let name = r.symbol.name.as_str();
        if name.starts_with("tristack_switch_to") {
            LANDED[cpu][Landed::SwitchTo as usize].fetch_add(1, Ordering::Relaxed);
        } else if name == "tristack_irq_common" || name == "tristack_irq_stubs" {
            LANDED[cpu][Landed::IrqEntry as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a storm worker does, and its results.
struct Work {
    kind: WorkKind,
    /// Self-IPIs sent / switches made / #DB nests run.
    done: AtomicU64,
    /// Checksum mismatches, lost self-IPIs.
    bad: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WorkKind {
    Irqs,
    Switch,
    Db,
}

fn mix(acc: u64, i: u64) -> u64 {
    (acc ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17).wrapping_add(i)
}

fn storm_worker(arg: u64) -> i64 {
    // SAFETY: `nmi_storm` keeps every `Work` alive until it has joined us.
    let work = unsafe { &*(arg as *const Work) };
    let cpu = this_cpu();
    match work.kind {
        WorkKind::Irqs => {
            while !STORM_STOP.load(Ordering::Relaxed) {
                let before = STORM_IRQS[cpu.id()].load(Ordering::SeqCst);
                apic::send_self_ipi(STORM_IRQ_VECTOR);
                // Interrupts are on: the IPI is taken before we get here,
                // unless an NMI or another IRQ delays it a little.
                let arrived = (0..10_000_000u64).any(|_| STORM_IRQS[cpu.id()].load(Ordering::SeqCst) != before);
                if !arrived {
                    work.bad.fetch_add(1, Ordering::Relaxed);
                }
                work.done.fetch_add(1, Ordering::Relaxed);
            }
        }
        WorkKind::Switch => {
            // A checksum in registers and on the stack across every switch,
            // recomputed at the end.
            let mut acc = arg;
            let mut i = 0;
            while !STORM_STOP.load(Ordering::Relaxed) {
                acc = mix(acc, i);
                i += 1;
                sched::yield_now();
            }
            let expect = (0..i).fold(arg, mix);
            if acc != expect {
                work.bad.fetch_add(1, Ordering::Relaxed);
            }
            work.done.store(i, Ordering::Relaxed);
        }
        WorkKind::Db => {
            cpu.db_storm.store(true, Ordering::SeqCst);
            let top = cpu.ist(Ist::DB);
            while !STORM_STOP.load(Ordering::Relaxed) {
                crate::arch::debug::storm_db_once();
                // Back from the nest: IST[DB] must be unshifted again.
                if cpu.ist(Ist::DB) != top {
                    work.bad.fetch_add(1, Ordering::Relaxed);
                }
                work.done.fetch_add(1, Ordering::Relaxed);
                if work.done.load(Ordering::Relaxed) % 16 == 0 {
                    sched::yield_now();
                }
            }
            cpu.db_storm.store(false, Ordering::SeqCst);
        }
    }
    0
}

/// `nmi-storm SECONDS`: this CPU NMIs every other CPU as fast as they take
/// them, while each of those runs self-IPIs, context switches and nested
/// #DBs; then every count must add up.
pub fn nmi_storm(args: &[&str]) -> CmdResult {
    let [secs] = args else {
        return Err(ArgError("nmi-storm: usage: nmi-storm SECONDS (1 to 600)".into()).into());
    };
    let secs = cmdline::number("nmi-storm", "SECONDS", secs, 1..=600)?;
    let me = this_cpu().id();
    let targets: Vec<usize> = percpu::online_cpus().filter(|&c| c != me).collect();
    if targets.is_empty() {
        return Err(CmdError::Failed("needs at least 2 CPUs (boot with --smp 2 or more)".into()));
    }
    if STORM_ACTIVE.swap(true, Ordering::SeqCst) {
        return Err(CmdError::Failed("a storm is already running".into()));
    }
    let result = storm(me, &targets, secs);
    STORM_ACTIVE.store(false, Ordering::SeqCst);
    result
}

fn storm(me: usize, targets: &[usize], secs: u64) -> CmdResult {
    STORM_STOP.store(false, Ordering::SeqCst);
    for c in 0..MAX_CPUS {
        LANDED[c].iter().for_each(|a| a.store(0, Ordering::Relaxed));
        STORM_IRQS_MISPLACED[c].store(0, Ordering::Relaxed);
    }
    let snapshot = |f: &dyn Fn(usize) -> u64| -> Vec<u64> { targets.iter().map(|&c| f(c)).collect() };
    let nmis0 = snapshot(&|c| percpu::of(c).nmi_count.load(Ordering::SeqCst));
    let irqs0 = snapshot(&|c| STORM_IRQS[c].load(Ordering::SeqCst));
    let nests0 = snapshot(&|c| percpu::of(c).db_storm_nests.load(Ordering::SeqCst));
    let dbbad0 = snapshot(&|c| percpu::of(c).db_storm_bad.load(Ordering::SeqCst));
    let reentered0: Vec<u64> =
        percpu::online_cpus().map(|c| percpu::of(c).nmi_stack_reentered.load(Ordering::SeqCst)).collect();

    // Per target: one self-IPI sender, two switchers, one nested-#DB loop.
    let kinds = [WorkKind::Irqs, WorkKind::Switch, WorkKind::Switch, WorkKind::Db];
    let mut works: Vec<(usize, alloc::boxed::Box<Work>)> = Vec::new();
    for &c in targets {
        for kind in kinds {
            works.push((c, alloc::boxed::Box::new(Work { kind, done: AtomicU64::new(0), bad: AtomicU64::new(0) })));
        }
    }
    let mut pids = Vec::new();
    for (c, w) in &works {
        let name = match w.kind {
            WorkKind::Irqs => alloc::format!("storm-irq/{c}"),
            WorkKind::Switch => alloc::format!("storm-sw/{c}"),
            WorkKind::Db => alloc::format!("storm-db/{c}"),
        };
        match sched::spawn_on(&name, storm_worker, &**w as *const Work as u64, Placement::Pinned(*c)) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                STORM_STOP.store(true, Ordering::SeqCst);
                pids.iter().for_each(|&p| {
                    let _ = sched::join(p);
                });
                return Err(CmdError::Failed(alloc::format!("cannot start a worker: {e}")));
            }
        }
    }
    println!(
        "nmi-storm: CPU {me} sends NMIs to CPUs {:?} for {secs} s; each runs {} workers (self-IPIs, 2 switchers, nested #DB)",
        targets,
        kinds.len()
    );

    // The sender: NMI every target, wait until each has taken it, repeat.
    let mut sent = 0u64;
    let mut lost = 0u64;
    let end = time::rdtsc() + time::tsc_per_ms() * 1000 * secs;
    let wait = time::tsc_per_ms() * 1000;
    while time::rdtsc() < end {
        let before = snapshot(&|c| percpu::of(c).nmi_count.load(Ordering::SeqCst));
        for &c in targets {
            smp::send_nmi(c);
            sent += 1;
        }
        for (i, &c) in targets.iter().enumerate() {
            let deadline = time::rdtsc() + wait;
            while percpu::of(c).nmi_count.load(Ordering::SeqCst) == before[i] {
                if time::rdtsc() > deadline {
                    lost += 1;
                    break;
                }
                core::hint::spin_loop();
            }
        }
        if sent % (64 * targets.len() as u64) == 0 {
            // Let this CPU's own threads (the shell's tick work) run too.
            sched::yield_now();
        }
    }
    STORM_STOP.store(true, Ordering::SeqCst);
    let mut exits_bad = 0;
    for pid in pids {
        if sched::join(pid) != Ok(Ended::Exited(0)) {
            exits_bad += 1;
        }
    }

    let delta = |now: Vec<u64>, then: &[u64]| -> Vec<u64> { now.iter().zip(then).map(|(a, b)| a - b).collect() };
    let nmis = delta(snapshot(&|c| percpu::of(c).nmi_count.load(Ordering::SeqCst)), &nmis0);
    let irqs = delta(snapshot(&|c| STORM_IRQS[c].load(Ordering::SeqCst)), &irqs0);
    let nests = delta(snapshot(&|c| percpu::of(c).db_storm_nests.load(Ordering::SeqCst)), &nests0);
    let db_bad: u64 = delta(snapshot(&|c| percpu::of(c).db_storm_bad.load(Ordering::SeqCst)), &dbbad0).iter().sum();
    let reentered: u64 = percpu::online_cpus()
        .zip(&reentered0)
        .map(|(c, r0)| percpu::of(c).nmi_stack_reentered.load(Ordering::SeqCst) - r0)
        .sum();
    let misplaced: u64 = targets.iter().map(|&c| STORM_IRQS_MISPLACED[c].load(Ordering::SeqCst)).sum();
    let sum = |kind: WorkKind, f: &dyn Fn(&Work) -> u64| -> u64 {
        works.iter().filter(|(_, w)| w.kind == kind).map(|(_, w)| f(w)).sum()
    };
    let ipis_sent = sum(WorkKind::Irqs, &|w| w.done.load(Ordering::Relaxed));
    let ipis_lost = sum(WorkKind::Irqs, &|w| w.bad.load(Ordering::Relaxed));
    let switches = sum(WorkKind::Switch, &|w| w.done.load(Ordering::Relaxed));
    let checksums_bad = sum(WorkKind::Switch, &|w| w.bad.load(Ordering::Relaxed));
    let db_loops = sum(WorkKind::Db, &|w| w.done.load(Ordering::Relaxed));
    let ist_db_bad = sum(WorkKind::Db, &|w| w.bad.load(Ordering::Relaxed));
    let handled: u64 = nmis.iter().sum();
    let irqs_handled: u64 = irqs.iter().sum();
    let nests_total: u64 = nests.iter().sum();

    println!("nmi-storm: NMIs sent {sent}, delivered {handled}, lost {lost}");
    for (i, &c) in targets.iter().enumerate() {
        let landed: Vec<alloc::string::String> = LANDED_NAMES
            .iter()
            .enumerate()
            .map(|(k, name)| alloc::format!("{name} {}", LANDED[c][k].load(Ordering::Relaxed)))
            .collect();
        println!(
            "nmi-storm: CPU {c}: {} NMIs ({}), {} self-IPIs, {} #DB nests",
            nmis[i],
            landed.join(", "),
            irqs[i],
            nests[i]
        );
    }
    println!("nmi-storm: self-IPIs sent {ipis_sent}, handled {irqs_handled} ({misplaced} off the IRQ stack), lost {ipis_lost}");
    println!("nmi-storm: switches {switches}, checksums bad {checksums_bad}");
    println!("nmi-storm: nested #DB {db_loops} runs, {nests_total} on the right stacks, {db_bad} wrong, IST[DB] left shifted {ist_db_bad}");
    println!("nmi-storm: NMI stack re-entered while live: {reentered}; workers that did not exit cleanly: {exits_bad}");
    let ok = handled == sent
        && lost == 0
        && ipis_sent == irqs_handled
        && ipis_lost == 0
        && misplaced == 0
        && checksums_bad == 0
        && nests_total == db_loops
        && db_bad == 0
        && ist_db_bad == 0
        && reentered == 0
        && exits_bad == 0
        && switches > 0
        && db_loops > 0;
    if !ok {
        return Err(CmdError::Failed("a count did not add up (see above)".into()));
    }
    println!("nmi-storm: ok, every count adds up");
    Ok(())
}

// --- tlb-shootdown ---------------------------------------------------------------

static TLB_PAGE: AtomicU64 = AtomicU64::new(0);
static TLB_READY: AtomicBool = AtomicBool::new(false);
static TLB_FREED: AtomicBool = AtomicBool::new(false);
/// The value the reader saw after the free (if it saw one at all).
static TLB_STALE_READ: AtomicU64 = AtomicU64::new(0);
const TLB_MAGIC: u64 = 0x7_1b5_5700d;

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
    let usage = || ArgError("tlb-shootdown: usage: tlb-shootdown CPU [skip] (CPU: another online CPU)".into());
    let (cpu, skip) = match args {
        [cpu] => (cpu, false),
        [cpu, "skip"] => (cpu, true),
        _ => return Err(usage().into()),
    };
    let cpu = cmdline::number("tlb-shootdown", "CPU", cpu, 0..=MAX_CPUS as u64 - 1)? as usize;
    let me = this_cpu().id();
    if cpu == me || !percpu::is_online(cpu) {
        return Err(ArgError(alloc::format!("tlb-shootdown: CPU {cpu} must be online and not this CPU ({me})")).into());
    }
    let fail = |e| CmdError::Failed(alloc::format!("{e}"));
    let page = vmalloc::vmalloc_guarded(PAGE_SIZE, PAGE_SIZE, vmalloc::ONE_PAGE_GUARDS).map_err(fail)?;
    // SAFETY: just mapped, ours.
    unsafe { (page.start as *mut u64).write_volatile(TLB_MAGIC) };
    TLB_PAGE.store(page.start, Ordering::SeqCst);
    TLB_READY.store(false, Ordering::SeqCst);
    TLB_FREED.store(false, Ordering::SeqCst);
    TLB_STALE_READ.store(0, Ordering::SeqCst);
    let before = smp::tlb_shootdowns(cpu);
    let pid = sched::spawn_on("tlb-reader", tlb_reader, 0, Placement::Pinned(cpu)).map_err(fail)?;
    while !TLB_READY.load(Ordering::SeqCst) {
        sched::yield_now();
    }
    smp::SKIP_SHOOTDOWN.store(skip, Ordering::SeqCst);
    let freed = vmalloc::vfree(page.start);
    smp::SKIP_SHOOTDOWN.store(false, Ordering::SeqCst);
    freed.map_err(fail)?;
    TLB_FREED.store(true, Ordering::SeqCst);
    let shot = smp::tlb_shootdowns(cpu) - before;
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
            "reader ended {other:?}, read {:#x} after the free, {shot} shoot-down(s)",
            TLB_STALE_READ.load(Ordering::SeqCst)
        ))),
    }
}
