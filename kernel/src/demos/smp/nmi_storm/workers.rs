//! The storm's workers (self-IPIs, switches, nested #DB on each CPU) and
//! the command that runs them, step by step, then checks every count.

use super::*;

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
                apic::send_self_ipi(NMI_STORM_VECTOR.load(Ordering::Relaxed));
                // Interrupts are on: the IPI is taken before we get here,
                // unless an NMI or another IRQ delays it a little.
                let arrived = spin_until(SPIN_WAIT_MS, || STORM_IRQS[cpu.id()].load(Ordering::SeqCst) != before);
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
            DB_STORM[cpu.id()].store(true, Ordering::SeqCst);
            let top = cpu.ist(Ist::DB);
            while !STORM_STOP.load(Ordering::Relaxed) {
                storm_db_once();
                // Back from the nest: IST[DB] must be unshifted again.
                if cpu.ist(Ist::DB) != top {
                    work.bad.fetch_add(1, Ordering::Relaxed);
                }
                work.done.fetch_add(1, Ordering::Relaxed);
                if work.done.load(Ordering::Relaxed) % 16 == 0 {
                    sched::yield_now();
                }
            }
            DB_STORM[cpu.id()].store(false, Ordering::SeqCst);
        }
    }
    0
}

// --- The command, in steps --------------------------------------------------------

/// `nmi-storm SECONDS`.
pub fn nmi_storm(args: &[&str]) -> CmdResult {
    let [secs] = args else {
        return Err(ArgError::usage_and(" (1 to 600)").into());
    };
    let secs = cmdline::number("SECONDS", secs, 1..=600)?;
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

/// Per-target counters read before and after the storm.
struct Counters {
    nmis: Vec<u64>,
    irqs: Vec<u64>,
    nests: Vec<u64>,
    db_bad: Vec<u64>,
    /// NMI stack re-entries summed over every online CPU.
    reentered: u64,
    /// Machine checks (from the QEMU monitor during the storm) over every
    /// online CPU, and those of them that landed inside an NMI handler.
    mces: u64,
    mces_in_nmi: u64,
}

impl Counters {
    fn read(targets: &[usize]) -> Counters {
        let per = |f: &dyn Fn(usize) -> u64| targets.iter().map(|&c| f(c)).collect();
        Counters {
            nmis: per(&|c| crate::arch::nmi::NMI_COUNT.of(c).load(Ordering::SeqCst)),
            irqs: per(&|c| STORM_IRQS[c].load(Ordering::SeqCst)),
            nests: per(&|c| DB_STORM_NESTS[c].load(Ordering::SeqCst)),
            db_bad: per(&|c| DB_STORM_BAD[c].load(Ordering::SeqCst)),
            reentered: percpu::online_cpus()
                .map(|c| crate::arch::nmi::NMI_STACK_REENTERED.of(c).load(Ordering::SeqCst))
                .sum(),
            mces: percpu::online_cpus().map(|c| crate::arch::mce::MCE_COUNT.of(c).load(Ordering::SeqCst)).sum(),
            mces_in_nmi: percpu::online_cpus().map(|c| crate::arch::mce::MCE_IN_NMI.of(c).load(Ordering::SeqCst)).sum(),
        }
    }

    /// What happened between `before` and now.
    fn since(before: &Counters, targets: &[usize]) -> Counters {
        let now = Counters::read(targets);
        let d = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x - y).collect();
        Counters {
            nmis: d(&now.nmis, &before.nmis),
            irqs: d(&now.irqs, &before.irqs),
            nests: d(&now.nests, &before.nests),
            db_bad: d(&now.db_bad, &before.db_bad),
            reentered: now.reentered - before.reentered,
            mces: now.mces - before.mces,
            mces_in_nmi: now.mces_in_nmi - before.mces_in_nmi,
        }
    }
}

fn storm(me: usize, targets: &[usize], secs: u64) -> CmdResult {
    STORM_STOP.store(false, Ordering::SeqCst);
    for c in 0..MAX_CPUS {
        LANDED[c].iter().for_each(|a| a.store(0, Ordering::Relaxed));
        STORM_IRQS_MISPLACED[c].store(0, Ordering::Relaxed);
    }
    let before = Counters::read(targets);
    let (works, pids) = start_workers(targets)?;
    println!(
        "nmi-storm: CPU {me} sends NMIs to CPUs {:?} for {secs} s; each runs {} workers (self-IPIs, 2 switchers, nested #DB)",
        targets,
        WORKER_KINDS.len()
    );
    let (sent, lost) = send_nmis(targets, secs);
    STORM_STOP.store(true, Ordering::SeqCst);
    let exits_bad = pids.into_iter().filter(|&pid| sched::join(pid) != Ok(Ended::Exited(0))).count();
    let delta = Counters::since(&before, targets);
    report(targets, &works, &delta, sent, lost, exits_bad)
}

/// Per target: one self-IPI sender, two switchers, one nested-#DB loop.
const WORKER_KINDS: [WorkKind; 4] = [WorkKind::Irqs, WorkKind::Switch, WorkKind::Switch, WorkKind::Db];

/// Start the workers pinned to their CPUs; on failure stop those started.
#[allow(clippy::vec_box, reason = "each worker holds its Work's address; a Vec<Work> would move them as it grows")]
fn start_workers(targets: &[usize]) -> Result<(Vec<Box<Work>>, Vec<sched::Pid>), CmdError> {
    let mut works = Vec::new();
    let mut pids = Vec::new();
    for &c in targets {
        for kind in WORKER_KINDS {
            let work = Box::new(Work { kind, done: AtomicU64::new(0), bad: AtomicU64::new(0) });
            let name = match kind {
                WorkKind::Irqs => alloc::format!("storm-irq/{c}"),
                WorkKind::Switch => alloc::format!("storm-sw/{c}"),
                WorkKind::Db => alloc::format!("storm-db/{c}"),
            };
            match sched::spawn_on(&name, storm_worker, &*work as *const Work as u64, Placement::Pinned(c)) {
                Ok(pid) => pids.push(pid),
                Err(e) => {
                    STORM_STOP.store(true, Ordering::SeqCst);
                    pids.iter().for_each(|&p| {
                        let _ = sched::join(p);
                    });
                    return Err(CmdError::Failed(alloc::format!("cannot start a worker: {e}")));
                }
            }
            works.push(work);
        }
    }
    Ok((works, pids))
}

/// The sender: NMI every target, wait until each has taken it, repeat for
/// `secs`. Returns (sent, lost).
fn send_nmis(targets: &[usize], secs: u64) -> (u64, u64) {
    let mut sent = 0u64;
    let mut lost = 0u64;
    let end = time::rdtsc() + time::tsc_per_ms() * 1000 * secs;
    while time::rdtsc() < end {
        let before: Vec<u64> =
            targets.iter().map(|&c| crate::arch::nmi::NMI_COUNT.of(c).load(Ordering::SeqCst)).collect();
        for &c in targets {
            smp::send_nmi(c);
            sent += 1;
        }
        for (i, &c) in targets.iter().enumerate() {
            if !spin_until(1000, || crate::arch::nmi::NMI_COUNT.of(c).load(Ordering::SeqCst) != before[i]) {
                lost += 1;
            }
        }
        if sent.is_multiple_of(64 * targets.len() as u64) {
            // Let this CPU's own threads (the shell's tick work) run too.
            sched::yield_now();
        }
    }
    (sent, lost)
}

/// Print every count and check that they add up.
fn report(targets: &[usize], works: &[Box<Work>], d: &Counters, sent: u64, lost: u64, exits_bad: usize) -> CmdResult {
    let sum = |kind: WorkKind, f: &dyn Fn(&Work) -> u64| -> u64 {
        works.iter().filter(|w| w.kind == kind).map(|w| f(w)).sum()
    };
    let ipis_sent = sum(WorkKind::Irqs, &|w| w.done.load(Ordering::Relaxed));
    let ipis_lost = sum(WorkKind::Irqs, &|w| w.bad.load(Ordering::Relaxed));
    let switches = sum(WorkKind::Switch, &|w| w.done.load(Ordering::Relaxed));
    let checksums_bad = sum(WorkKind::Switch, &|w| w.bad.load(Ordering::Relaxed));
    let db_loops = sum(WorkKind::Db, &|w| w.done.load(Ordering::Relaxed));
    let ist_db_bad = sum(WorkKind::Db, &|w| w.bad.load(Ordering::Relaxed));
    let handled: u64 = d.nmis.iter().sum();
    let irqs_handled: u64 = d.irqs.iter().sum();
    let nests_total: u64 = d.nests.iter().sum();
    let db_bad: u64 = d.db_bad.iter().sum();
    let misplaced: u64 = targets.iter().map(|&c| STORM_IRQS_MISPLACED[c].load(Ordering::SeqCst)).sum();

    println!("nmi-storm: NMIs sent {sent}, delivered {handled}, lost {lost}");
    for (i, &c) in targets.iter().enumerate() {
        let landed: Vec<String> = LANDED_NAMES
            .iter()
            .enumerate()
            .map(|(k, name)| alloc::format!("{name} {}", LANDED[c][k].load(Ordering::Relaxed)))
            .collect();
        println!(
            "nmi-storm: CPU {c}: {} NMIs ({}), {} self-IPIs, {} #DB nests",
            d.nmis[i],
            landed.join(", "),
            d.irqs[i],
            d.nests[i]
        );
    }
    println!(
        "nmi-storm: self-IPIs sent {ipis_sent}, handled {irqs_handled} ({misplaced} off the IRQ stack), lost {ipis_lost}"
    );
    println!("nmi-storm: switches {switches}, checksums bad {checksums_bad}");
    println!(
        "nmi-storm: nested #DB {db_loops} runs, {nests_total} on the right stacks, {db_bad} wrong, IST[DB] left shifted {ist_db_bad}"
    );
    println!("nmi-storm: machine checks during the storm: {} ({} inside an NMI handler)", d.mces, d.mces_in_nmi);
    println!(
        "nmi-storm: NMI stack re-entered while live: {}; workers that did not exit cleanly: {exits_bad}",
        d.reentered
    );
    let ok = handled == sent
        && lost == 0
        && ipis_sent == irqs_handled
        && ipis_lost == 0
        && misplaced == 0
        && checksums_bad == 0
        && nests_total == db_loops
        && db_bad == 0
        && ist_db_bad == 0
        && d.reentered == 0
        && exits_bad == 0
        && switches > 0
        && db_loops > 0;
    if !ok {
        return Err(CmdError::Failed("a count did not add up (see above)".into()));
    }
    println!("nmi-storm: ok, every count adds up");
    Ok(())
}
