//! `soak SECONDS [SEED]`: every demo that does not end the boot, in random
//! order (the seed is printed, so a failing order can be replayed), from
//! the shell while background threads on the other CPUs run user programs;
//! `nmi-storm` and the syscall fuzzer are in the mix. At the end: per-demo
//! counts, oopses matched to the demos that cause them on purpose, the
//! stack checks' violation counters, and memory before and after.
//!
//! It drives the demos through the shell's own command path, as a person
//! typing them would: the shell, the layer above, hands that path down at
//! init (`set_line_runner`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub mod table;

use super::{free_frames, violations};
use crate::arch::percpu;
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::mm::{paging, vmalloc};
use crate::sched::{self, Ended, Placement};
use crate::stacks::thread;
use crate::user::rng::Rng;
use crate::{debug, println, time};
use table::{BACKGROUND, FOREGROUND};

/// The shell's way of running a line typed after a prompt (false at the
/// first error, after printing it), handed down at init.
static LINE_RUNNER: spin::Once<fn(&str, &str) -> bool> = spin::Once::new();

/// Called by the shell at init: how soak runs a command line.
pub fn set_line_runner(run: fn(prompt: &str, line: &str) -> bool) {
    LINE_RUNNER.call_once(|| run);
}

fn run_line(prompt: &str, line: &str) -> bool {
    let run = LINE_RUNNER.get().expect("the shell hands soak its line runner at init");
    run(prompt, line)
}

static STOP: AtomicBool = AtomicBool::new(false);
static PAUSE: AtomicBool = AtomicBool::new(false);
/// Background threads parked because of PAUSE.
static PARKED: AtomicUsize = AtomicUsize::new(0);
static BG_RUNS: AtomicU64 = AtomicU64::new(0);
static BG_FAILED: AtomicU64 = AtomicU64::new(0);

fn background(seed: u64) -> i64 {
    let mut rng = Rng::new(seed);
    while !STOP.load(Ordering::SeqCst) {
        if PAUSE.load(Ordering::SeqCst) {
            // Park only once this thread's `spawn` workers are gone, so no
            // stack is freed while an exclusive demo counts frames.
            wait_for_children();
            PARKED.fetch_add(1, Ordering::SeqCst);
            while PAUSE.load(Ordering::SeqCst) && !STOP.load(Ordering::SeqCst) {
                sched::sleep_ms(2);
            }
            PARKED.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let line = rng.pick(BACKGROUND);
        BG_RUNS.fetch_add(1, Ordering::SeqCst);
        if !run_line("soak-bg> ", line) {
            BG_FAILED.fetch_add(1, Ordering::SeqCst);
        }
    }
    wait_for_children();
    0
}

/// Wait until the threads the current one started (`spawn` workers,
/// processes) have ended, and reap them. Long-lived children that were
/// there before the soak (ksoftirqd, under init) do not count.
fn wait_for_children() {
    let me = sched::current().map(|t| t.pid);
    loop {
        sched::reap_children();
        // Any child left, ended ones too: one that ended after the reaping
        // above is still unreaped, and its stack and address space would
        // be freed in the middle of the soak (a loaded run saw 45 more
        // frames free at the end than at the start).
        let left = sched::snapshot()
            .iter()
            .any(|t| Some(t.parent) == me && u64::from(t.pid) > FIRST_SOAK_PID.load(Ordering::SeqCst) && !is_bg(t.pid));
        if !left {
            return;
        }
        sched::sleep_ms(5);
    }
}

/// Tasks created before the soak started have PIDs up to this.
static FIRST_SOAK_PID: AtomicU64 = AtomicU64::new(0);
static BG_PIDS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn is_bg(pid: sched::Pid) -> bool {
    BG_PIDS.iter().any(|p| p.load(Ordering::SeqCst) == u64::from(pid))
}

/// Park every background thread (for a demo that measures the machine).
fn pause_background(threads: usize) {
    wait_for_children();
    PAUSE.store(true, Ordering::SeqCst);
    while PARKED.load(Ordering::SeqCst) < threads {
        sched::sleep_ms(2);
    }
}

#[derive(Default)]
struct Tally {
    runs: u64,
    failed: u64,
    oopses: u64,
    unexpected_oopses: u64,
}

/// Counters the stack checks keep: return-to-user violations and NMI
/// stack re-entries (both must stay 0).
fn stack_violations() -> (u64, u64) {
    let reentered =
        percpu::online_cpus().map(|c| crate::arch::nmi::NMI_STACK_REENTERED.of(c).load(Ordering::SeqCst)).sum();
    (violations(), reentered)
}

/// Memory as the leak check sees it. Kept on purpose, and so not a leak:
/// stacks in the per-CPU caches (their frames count as free, their vmap
/// areas are not counted) and page-table pages of the vmap area (created
/// at a new high-water mark and kept, as Linux keeps them; counted free).
struct Memory {
    free: u64,
    vmap_areas: usize,
    table_pages: u64,
}

fn memory() -> Memory {
    let cached: usize = percpu::online_cpus().map(thread::cached_on).sum();
    Memory {
        free: free_frames(),
        vmap_areas: vmalloc::stats().areas - cached,
        table_pages: paging::kernel_table_pages(),
    }
}

pub fn soak(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage_and(" (SECONDS 1 to 86400)");
    let (secs, seed) = match args {
        [s] => (cmdline::number("SECONDS", s, 1..=86_400)?, time::rdtsc() % 1_000_000),
        [s, seed] => (cmdline::number("SECONDS", s, 1..=86_400)?, cmdline::number("SEED", seed, 0..=u64::MAX)?),
        _ => return Err(usage().into()),
    };
    let me = percpu::current_cpu_id();
    let others: Vec<usize> = percpu::online_cpus().filter(|&c| c != me).collect();
    if others.len() < 3 {
        return Err(CmdError::Failed("needs at least 4 CPUs (boot with --smp 4)".into()));
    }
    println!(
        "soak: seed {seed}, {secs} s, {} demos in the shell, background threads on CPUs {others:?}",
        FOREGROUND.len()
    );
    let last_pid = sched::snapshot().iter().map(|t| t.pid).max().unwrap_or(0);
    FIRST_SOAK_PID.store(u64::from(last_pid), Ordering::SeqCst);
    // Warm up what is kept for reuse once created (page-table pages of the
    // vmap area), then let every thread it started end and be reaped.
    for line in ["threads-stress 32 10", "run-many 4 true", "run uthreads"] {
        run_line("soak> ", line);
    }
    wait_for_children();
    let (oops0, (viol0, reent0), mem0) = (u64::from(debug::oops::oops_count()), stack_violations(), memory());

    STOP.store(false, Ordering::SeqCst);
    PAUSE.store(false, Ordering::SeqCst);
    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut threads = Vec::new();
    for &cpu in &others {
        let pid = sched::spawn_on("soak-bg", background, rng.next_u64(), Placement::Pinned(cpu))
            .map_err(|e| CmdError::Failed(alloc::format!("cannot start a background thread: {e}")))?;
        BG_PIDS[threads.len()].store(u64::from(pid), Ordering::SeqCst);
        threads.push(pid);
    }
    let mut tally: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let deadline = time::rdtsc() + secs * 1000 * time::tsc_per_ms();
    let interrupt = crate::tty::Interrupt::mark();
    while time::rdtsc() < deadline {
        if interrupt.pending() {
            println!("soak: stopped by Ctrl-C; the tally so far:");
            break;
        }
        let demo = &FOREGROUND[rng.below(FOREGROUND.len() as u64) as usize];
        if demo.exclusive {
            pause_background(threads.len());
        }
        let intended = demo.oopses != (0, 0);
        if intended {
            println!("soak: {}: (expected oops) next", demo.line);
        }
        let before = u64::from(debug::oops::oops_count());
        let ok = run_line("soak> ", demo.line);
        let oopses = u64::from(debug::oops::oops_count()) - before;
        if intended {
            println!("soak: {}: (expected oops) {oopses} oops(es), the kernel goes on", demo.line);
        }
        PAUSE.store(false, Ordering::SeqCst);
        let t = tally.entry(demo.line).or_default();
        t.runs += 1;
        t.failed += u64::from(!ok);
        t.oopses += oopses;
        if !(demo.oopses.0..=demo.oopses.1).contains(&oopses) {
            t.unexpected_oopses += 1;
        }
    }
    STOP.store(true, Ordering::SeqCst);
    let bg_killed = threads.into_iter().filter(|&pid| sched::join(pid) != Ok(Ended::Exited(0))).count();
    wait_for_children();
    BG_PIDS.iter().for_each(|p| p.store(0, Ordering::SeqCst));
    let (oopses, (viol1, reent1), mem1) = (u64::from(debug::oops::oops_count()) - oops0, stack_violations(), memory());
    report(&tally, bg_killed, oopses, (viol1 - viol0, reent1 - reent0), &mem0, &mem1)
}

fn report(
    tally: &BTreeMap<&'static str, Tally>,
    bg_killed: usize,
    oopses: u64,
    (violations, reentered): (u64, u64),
    mem0: &Memory,
    mem1: &Memory,
) -> CmdResult {
    // "failed": runs that did not end as the demo should (for `db 3 --cpu
    // 1` that is reporting success).
    println!("soak: {:<26} {:>5} {:>6} {:>7} {:>9}", "demo", "runs", "failed", "oopses", "expected");
    let mut intended = 0;
    for demo in FOREGROUND {
        let Some(t) = tally.get(demo.line) else { continue };
        let expected = match demo.oopses {
            (0, 0) => alloc::string::String::from("-"),
            (lo, hi) if lo == hi => alloc::format!("{lo} each"),
            (lo, hi) => alloc::format!("{lo}-{hi} each"),
        };
        println!("soak: {:<26} {:>5} {:>6} {:>7} {:>9}", demo.line, t.runs, t.failed, t.oopses, expected);
        intended += t.oopses;
    }
    let not_run = FOREGROUND.iter().filter(|d| !tally.contains_key(d.line)).count();
    let (runs, failed): (u64, u64) = tally.values().fold((0, 0), |(r, f), t| (r + t.runs, f + t.failed));
    let unexpected: u64 = tally.values().map(|t| t.unexpected_oopses).sum();
    let (bg_runs, bg_failed) = (BG_RUNS.swap(0, Ordering::SeqCst), BG_FAILED.swap(0, Ordering::SeqCst));
    println!(
        "soak: shell: {runs} demos run ({} of {} kinds; {not_run} never drawn), {failed} failed",
        tally.len(),
        FOREGROUND.len()
    );
    println!("soak: background: {bg_runs} commands, {bg_failed} failed, {bg_killed} threads did not exit cleanly");
    println!("soak: oopses {oopses}: {intended} by demos that oops on purpose, {unexpected} demo runs with an unexpected count");
    println!("soak: stack checks: return-to-user violations {violations}, NMI stack re-entered {reentered}");
    println!(
        "soak: free frames {} -> {}, vmap areas in use {} -> {}, vmap page-table pages {} -> {} (kept for reuse)",
        mem0.free, mem1.free, mem0.vmap_areas, mem1.vmap_areas, mem0.table_pages, mem1.table_pages
    );
    let ok = failed == 0
        && bg_failed == 0
        && bg_killed == 0
        && unexpected == 0
        && oopses == intended
        && violations == 0
        && reentered == 0
        && mem0.free == mem1.free
        && mem0.vmap_areas == mem1.vmap_areas;
    if !ok {
        return Err(CmdError::Failed("a count did not hold (see above)".into()));
    }
    println!("soak: ok");
    Ok(())
}
