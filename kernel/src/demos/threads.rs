//! Threads on their 16 KiB guarded stacks (docs/threads.md): `ps`, `spawn`,
//! `sleep`, `overflow`, `overrun`, `threads-stress`, `bench`, `oops=`.

use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu;
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{estack_range, ESTACKS, PAGE_SIZE};
use crate::mm::{phys, vmalloc};
use crate::sched::{self, Ended, State};
use crate::stacks::{dynamic, thread, usage};
use crate::{println, time};

/// `ps`: Linux's sysrq-t task list (4.18 shape), then per-CPU stack usage.
pub fn ps(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    // Linux 4.18's sysrq-t columns, plus the CPU the task runs or last ran on.
    // `mode`: kthread, or for a user thread whether it is in user mode
    // right now (its kernel stack then holds nothing) or in the kernel.
    // `size`: the bytes its stack has (an `L` for a stack limit); `mode` says
    // when a kthread runs on an extra stack.
    println!("  task                        PC stack   pid father            cpu  size mode");
    for t in sched::snapshot() {
        let pc = match (t.state, t.saved_pc) {
            (State::Running, _) | (_, None) => alloc::string::String::from("  running task    "),
            (_, Some(pc)) => alloc::format!(" {pc:016x} "),
        };
        let mode = match (t.user, t.in_user, t.extra_top) {
            (false, _, 0) => "kthread",
            (false, _, _) => "kthread, on an EXTRA stack",
            (true, true, _) => "user (kernel stack empty)",
            (true, false, _) => "user, in kernel",
        };
        // A dynamic stack: what is backed of it, then its size.
        let size = match t.stack.limit() {
            Some(l) => alloc::format!("L{l}"),
            None if t.stack.dynamic() => {
                alloc::format!("{}K/{}K", t.stack.resident_pages() * PAGE_SIZE / 1024, t.stack.size() / 1024)
            }
            None => alloc::format!("{}K", t.stack.size() / 1024),
        };
        println!(
            "{:<15.15} {}{pc}{:5} {:5} {:6} 0x{:08x} {:>3} {size:>5} {mode}",
            t.name,
            t.state.letter(),
            t.stack_free,
            t.pid,
            t.parent,
            0,
            t.cpu
        );
    }
    // Linux does not show these; the IST stacks are zero-filled when mapped,
    // so their untouched bytes are their high-water marks.
    let untouched = |(bottom, top): (u64, u64)| {
        // SAFETY: a mapped IRQ or exception stack (callers pass only those);
        // racing writers only change the statistic.
        let words = unsafe { core::slice::from_raw_parts(bottom as *const u64, ((top - bottom) / 8) as usize) };
        alloc::format!("{}/{}", usage::untouched(words), top - bottom)
    };
    for cpu in percpu::online_cpus() {
        let mut line = alloc::format!("cpu {cpu} stacks, bytes never touched:");
        if let Some(range) = crate::stacks::irq::range(cpu) {
            line.push_str(&alloc::format!(" IRQ {}", untouched(range)));
        }
        for d in ESTACKS.iter().filter(|d| d.size > 0 && (!d.kind.dynamic_only() || dynamic::armed())) {
            line.push_str(&alloc::format!(" {} {}", d.name, untouched(estack_range(cpu, d.kind))));
        }
        println!("{line}");
    }
    Ok(())
}

pub fn sleep(args: &[&str]) -> CmdResult {
    let [ms] = args else {
        return Err(ArgError::usage().into());
    };
    let ms = cmdline::number("MS", ms, 1..=600_000)?;
    let (j0, t0) = (time::jiffies(), time::rdtsc());
    sched::sleep_ms(ms);
    let cycles = time::rdtsc() - t0;
    println!(
        "sleep: {ms} ms asked, {} jiffies and {} ms of TSC passed",
        time::jiffies() - j0,
        cycles / time::tsc_per_ms().max(1)
    );
    Ok(())
}

// --- spawn: workers that yield and sleep, with a checksum ---------------------

const WORKER_ROUNDS: u64 = 60;

fn mix(acc: u64, i: u64, salt: u64) -> u64 {
    (acc ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(13).wrapping_add(salt)
}

fn expected_checksum(rounds: u64, salt: u64) -> u64 {
    (0..rounds).fold(salt, |acc, i| mix(acc, i, salt))
}

/// Alternates yield and 1–3 ms sleeps; the checksum lives in callee-saved
/// registers and on the stack across every switch, so a bad switch shows.
fn worker(salt: u64) -> i64 {
    let mut acc = salt;
    for i in 0..WORKER_ROUNDS {
        acc = mix(acc, i, salt);
        if i % 2 == 0 {
            sched::yield_now();
        } else {
            sched::sleep_ms(1 + i % 3);
        }
    }
    if acc == expected_checksum(WORKER_ROUNDS, salt) {
        0
    } else {
        println!("worker: checksum mismatch {acc:#x}");
        1
    }
}

pub fn spawn(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage_and(" (1 to 64 worker threads)");
    let mut stack = sched::StackRequest::inherited();
    let mut count = None;
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        match a {
            "--stack-size" => {
                stack.size = cmdline::stack_size(it.next().ok_or_else(usage)?)?;
                stack.limit = stack.limit.filter(|_| stack.size == crate::layout::THREAD_SIZE);
            }
            "--stack-limit" => stack.limit = Some(cmdline::stack_limit(it.next().ok_or_else(usage)?)?),
            "--dynamic" => stack.dynamic = true,
            n if count.is_none() => count = Some(cmdline::number("N", n, 1..=64)?),
            _ => return Err(usage().into()),
        }
    }
    let n = count.ok_or_else(usage)?;
    if stack.limit.is_some() && stack.size != crate::layout::THREAD_SIZE {
        return Err(ArgError::Invalid("a stack limit goes inside a 16K stack; not with --stack-size".into()).into());
    }
    // Only a plain 16K stack grows on demand; asked for explicitly, the
    // others are refused, inherited they simply win.
    if stack.dynamic && (stack.limit.is_some() || stack.size != crate::layout::THREAD_SIZE) {
        if args.contains(&"--dynamic") {
            return Err(ArgError::Invalid("--dynamic is a 16K stack without a limit".into()).into());
        }
        stack.dynamic = false;
    }
    if stack.dynamic {
        super::dynamic_stacks::arm()?;
    }
    let mut pids = Vec::new();
    for i in 0..n {
        let pid =
            sched::spawn_with_stack(&alloc::format!("worker-{i}"), worker, 0x5eed + i, sched::Placement::Any, stack)
                .map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
        pids.push(pid);
    }
    println!(
        "spawn: started {n} workers (pids {}..{}), each {WORKER_ROUNDS} rounds of yield/sleep",
        pids[0],
        pids[pids.len() - 1]
    );
    Ok(())
}

// --- overflow: a thread that recurses into its guard page ---------------------

/// One visible frame per level: 512 bytes of locals plus the call. Recursing
/// forever is the point: the guard page ends it.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    black_box(&mut frame);
    println!("overflow: depth {depth:2}, rsp {:016x}", crate::arch::cpu::stack_pointer());
    frame[0] = depth as u8;
    recurse(depth + 1) + u64::from(black_box(frame)[0])
}

/// The lock `overflow --holding-lock` dies holding.
static OVERFLOW_LOCK: crate::sync::IrqMutex<()> = crate::sync::IrqMutex::new(());

/// `arg` = 1: recurse with a spin lock held (interrupts off, the lock
/// counted in the CPU's `locks_held`).
fn overflow_thread(arg: u64) -> i64 {
    if arg == 1 {
        let _held = OVERFLOW_LOCK.lock();
        return recurse(1) as i64;
    }
    recurse(1) as i64
}

/// Writes over its own end magic (an overrun that skipped the guard page),
/// then yields: the scheduler's check on the way out catches it.
fn overrun_thread(_: u64) -> i64 {
    let bottom = sched::current().expect("running as a thread").stack.bottom;
    // SAFETY: our own stack's lowest word; deliberately wrong.
    unsafe { (bottom as *mut u64).write_volatile(0xdead_beef) };
    sched::yield_now();
    0
}

fn run_and_report(cmd: &str, name: &str, body: sched::Entry, arg: u64) -> CmdResult {
    let pid = sched::spawn(name, body, arg).map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
    match sched::join(pid) {
        Ok(Ended::Killed) => {
            println!("{cmd}: thread {name} ({pid}) was killed by the oops and reaped; the system carries on");
            Ok(())
        }
        Ok(Ended::Exited(code)) => Err(CmdError::Failed(alloc::format!("thread exited with {code}, not killed"))),
        Err(e) => Err(CmdError::Failed(alloc::format!("{e}"))),
    }
}

pub fn overflow(args: &[&str]) -> CmdResult {
    let holding_lock = match args {
        [] => false,
        ["--holding-lock"] => true,
        [other, ..] => return Err(ArgError::Unexpected((*other).into()).into()),
    };
    run_and_report("overflow", "overflow", overflow_thread, u64::from(holding_lock))
}

pub fn overrun(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    run_and_report("overrun", "overrun", overrun_thread, 0)
}

// --- threads-stress -------------------------------------------------------------

/// Per-thread results of `threads-stress` (index = arg).
static STRESS_SWITCHES: AtomicU64 = AtomicU64::new(0);
static STRESS_RESULT: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
/// The CPU each stress thread ran on (tasks never migrate).
static STRESS_CPU: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
/// The start gate: stress threads begin switching only once all of them
/// exist, so they overlap (and spread over the CPUs) however fast each is.
static STRESS_GO: AtomicBool = AtomicBool::new(true);

/// Whether stress thread `index` (run for `switches`) left the right checksum.
pub fn stress_ok(index: usize, switches: u64) -> bool {
    STRESS_RESULT[index].load(Ordering::SeqCst) == (0..switches).fold(index as u64, |a, j| mix(a, j, index as u64))
}

/// Yields `arg >> 8` times folding a checksum; stores it at index `arg & 0xff`.
pub fn stress_thread(arg: u64) -> i64 {
    let (index, switches) = (arg & 0xff, arg >> 8);
    while !STRESS_GO.load(Ordering::SeqCst) {
        sched::yield_now();
    }
    let mut acc = index;
    for i in 0..switches {
        acc = mix(acc, i, index);
        sched::yield_now();
    }
    STRESS_RESULT[index as usize].store(acc, Ordering::SeqCst);
    STRESS_CPU[index as usize].store(percpu::current_cpu_id() as u64, Ordering::SeqCst);
    STRESS_SWITCHES.fetch_add(switches, Ordering::SeqCst);
    0
}

pub fn threads_stress(args: &[&str]) -> CmdResult {
    let [n, m] = args else {
        return Err(ArgError::usage_and(" (N threads x M switches)").into());
    };
    let n = cmdline::number("N", n, 1..=64)?;
    let m = cmdline::number("M", m, 1..=1_000_000)?;
    // Warm up: the first stacks at these addresses allocate page-table
    // frames that stay; measure from after that.
    let warm: Vec<_> = (0..n).filter_map(|_| thread::alloc().ok()).collect();
    warm.into_iter().for_each(thread::free);
    thread::drain_cache();
    // Frames in the growth reserves of dynamic stacks are held, not leaked.
    let frames = || phys::counts().1 + crate::stacks::dynamic::reserved_everywhere();
    let (frames0, vmap0) = (frames(), vmalloc::stats());
    STRESS_SWITCHES.store(0, Ordering::SeqCst);
    let t0 = time::rdtsc();
    let mut pids = Vec::new();
    STRESS_GO.store(false, Ordering::SeqCst);
    let spawned = (0..n).try_for_each(|i| -> Result<(), crate::mm::vmap::VmapError> {
        pids.push(sched::spawn(&alloc::format!("stress-{i}"), stress_thread, i | (m << 8))?);
        Ok(())
    });
    STRESS_GO.store(true, Ordering::SeqCst);
    if let Err(e) = spawned {
        pids.into_iter().for_each(|pid| {
            let _ = sched::join(pid);
        });
        return Err(CmdError::Failed(alloc::format!("{e}")));
    }
    let mut bad = Vec::new();
    for (i, pid) in pids.into_iter().enumerate() {
        let ended = sched::join(pid);
        let ok = ended == Ok(Ended::Exited(0)) && stress_ok(i, m);
        if !ok {
            bad.push(i);
        }
    }
    let ms = (time::rdtsc() - t0) / time::tsc_per_ms().max(1);
    thread::drain_cache();
    let (frames1, vmap1) = (frames(), vmalloc::stats());
    println!(
        "threads-stress: {n} threads x {m} switches: {} yields in {ms} ms, {} checksums bad",
        STRESS_SWITCHES.load(Ordering::SeqCst),
        bad.len()
    );
    // On the heap: 64 counters would be half a KiB of this frame.
    let mut per_cpu = alloc::vec![0u64; crate::layout::MAX_CPUS];
    (0..n as usize).for_each(|i| per_cpu[STRESS_CPU[i].load(Ordering::SeqCst) as usize] += 1);
    let spread: Vec<alloc::string::String> =
        percpu::online_cpus().map(|c| alloc::format!("CPU {c}: {}", per_cpu[c])).collect();
    println!("threads-stress: threads per CPU: {}", spread.join(", "));
    println!(
        "threads-stress: free frames {frames0} -> {frames1}, vmap areas {} -> {} ({} KiB -> {} KiB mapped)",
        vmap0.areas,
        vmap1.areas,
        vmap0.mapped / 1024,
        vmap1.mapped / 1024
    );
    if !bad.is_empty() {
        return Err(CmdError::Failed(alloc::format!("checksums wrong for threads {bad:?}")));
    }
    if frames0 != frames1 || vmap0 != vmap1 {
        return Err(CmdError::Failed("frames or vmap space leaked".into()));
    }
    println!("threads-stress: ok, nothing leaked");
    Ok(())
}

/// `oops=panic` / `oops=kill`: what an oops in a thread does (Linux
/// `panic_on_oops`).
pub fn set_oops(value: &str) -> CmdResult {
    match value {
        "panic" => crate::debug::oops::set_panic_on_oops(true),
        "kill" => crate::debug::oops::set_panic_on_oops(false),
        other => {
            return Err(ArgError::Invalid(alloc::format!(
                "valid values are oops=panic and oops=kill, not oops={other}"
            ))
            .into())
        }
    }
    println!(
        "oops={value}: an oops in a thread {}",
        if value == "panic" { "panics the kernel" } else { "kills the thread" }
    );
    Ok(())
}

/// The TASK rows of `stacks`.
/// (cpu, pid, name, bottom, top) of every task stack.
pub fn task_stack_rows() -> Vec<(usize, u32, alloc::string::String, u64, u64)> {
    sched::snapshot()
        .into_iter()
        .map(|t| {
            // A thread in user mode: its kernel stack holds nothing live.
            let mut name = if t.in_user {
                alloc::format!("{} (in user mode: empty)", t.name)
            } else {
                alloc::string::String::from(t.name.as_str())
            };
            if t.stack.dynamic() {
                let pages = t.stack.size() / PAGE_SIZE;
                name.push_str(&alloc::format!(", dynamic: {} of {pages} pages backed", t.stack.resident_pages()));
            }
            (t.cpu, t.pid, name, t.stack.bottom, t.stack.top())
        })
        .collect()
}
