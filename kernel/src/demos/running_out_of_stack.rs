//! Running out of stack, handled (docs/running-out-of-stack.md): three
//! proposals Linux never merged, made real — Keith Owens' extra-stack pool
//! under a nested block-I/O stack, Tim Bird's mixed stack sizes and Sony's
//! stack limit — and what small stacks buy in memory.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::block::layers::{Crypt, Dev, Integrity, Linear, Loop, Mirror};
use crate::block::ramdisk::RamDisk;
use crate::block::{map, submit_bio, Bio, Depth, Op, SECTOR_SIZE};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{MAX_EXTRA_STACKS, PAGE_SIZE, THREAD_SIZE, THREAD_STACK_SIZES};
use crate::mm::phys;
use crate::println;
use crate::sched::{self, Ended, Placement, StackRequest};
use crate::stacks::{extra, thread};
use crate::sync::IrqMutex;

fn failed(e: impl core::fmt::Display) -> CmdError {
    CmdError::Failed(alloc::format!("{e}"))
}

// --- blk-stack / blk-io: the nested block-I/O stack ------------------------------

/// Sectors of the RAM disk at the bottom.
const DISK_SECTORS: u64 = 1024;
/// Most layers `blk-stack` builds.
const MAX_LAYERS: u64 = 64;

/// The device `blk-io` writes to: the top of the last `blk-stack`.
static DEVICE: IrqMutex<Option<Dev>> = IrqMutex::new(None);

/// `blk-stack LAYERS`: a RAM disk with LAYERS stacked drivers over it,
/// cycling linear, crypt, integrity, loop, mirror from the bottom up.
pub fn blk_stack(args: &[&str]) -> CmdResult {
    let [n] = args else {
        return Err(ArgError(alloc::format!("blk-stack: usage: blk-stack LAYERS (0 to {MAX_LAYERS})")).into());
    };
    let layers = cmdline::number("blk-stack", "LAYERS", n, 0..=MAX_LAYERS)?;
    *DEVICE.lock() = None; // the old stack's memory back first
    let mut dev: Dev = RamDisk::new(DISK_SECTORS).map_err(failed)?;
    let mut names = vec![dev.name()];
    for i in 0..layers {
        dev = match i % 5 {
            0 => Arc::new(Linear::new(dev, 1)),
            1 => Arc::new(Crypt::new(dev, 0xC0FFEE + i)),
            2 => Arc::new(Integrity::new(dev)),
            3 => Arc::new(Loop::new(dev)),
            _ => {
                let leg: Dev = RamDisk::new(dev.sectors()).map_err(failed)?;
                Arc::new(Mirror::new(dev, leg))
            }
        };
        names.push(dev.name());
    }
    names.reverse();
    println!("blk-stack: {layers} layers, {} sectors: {}", dev.sectors(), names.join(" -> "));
    *DEVICE.lock() = Some(dev);
    Ok(())
}

/// What one I/O thread did (updated as it goes, so a killed thread's
/// counts stay).
#[derive(Clone, Copy, Default)]
struct IoCounts {
    written: u64,
    write_eio: u64,
    verified: u64,
    read_eio: u64,
    bad: u64,
    depth: Depth,
}

struct IoJob {
    dev: Dev,
    first: u64,
    blocks: u64,
    seed: u64,
    counts: IrqMutex<IoCounts>,
    /// Sectors whose write was reported done: these must read back intact.
    written: IrqMutex<Vec<u64>>,
}

static ROUND: AtomicU64 = AtomicU64::new(1);

fn io_thread(arg: u64) -> i64 {
    // SAFETY: `blk_io` leaked one strong count for this thread.
    let job = unsafe { Arc::from_raw(arg as *const IoJob) };
    let mut data = [0u8; SECTOR_SIZE];
    for sector in job.first..job.first + job.blocks {
        let mut bio = Bio::new(Op::Write, sector);
        map::pattern(sector, job.seed, &mut bio.data[..]);
        let r = submit_bio(&*job.dev, &mut bio);
        let mut c = job.counts.lock();
        c.depth.merge(bio.depth);
        match r {
            Ok(()) => {
                c.written += 1;
                job.written.lock().push(sector);
            }
            Err(_) => c.write_eio += 1,
        }
    }
    let written = job.written.lock().clone();
    for sector in written {
        let mut bio = Bio::new(Op::Read, sector);
        let r = submit_bio(&*job.dev, &mut bio);
        map::pattern(sector, job.seed, &mut data);
        let mut c = job.counts.lock();
        c.depth.merge(bio.depth);
        match r {
            Ok(()) if bio.data[..] == data[..] => c.verified += 1,
            Ok(()) => c.bad += 1,
            Err(_) => c.read_eio += 1,
        }
    }
    0
}

fn describe(d: &Depth) -> String {
    let extra = if d.extra > 0 { alloc::format!(", EXTRA {} bytes", d.extra) } else { String::new() };
    alloc::format!("deepest: TASK {} bytes{extra}; {} submit levels", d.task, d.levels)
}

/// `blk-io [--threads T] [--blocks N]`: T threads each write N blocks of
/// their own, read them back and compare; then one more thread reads back
/// every block any of them was told was written.
pub fn blk_io(args: &[&str]) -> CmdResult {
    let usage = || ArgError("blk-io: usage: blk-io [--threads T] [--blocks N] [--hold] (T 1 to 16, N 1 to 256)".into());
    let (mut threads, mut blocks, mut hold) = (1, 16, false);
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if a == "--hold" {
            hold = true;
            continue;
        }
        let v = it.next().ok_or_else(usage)?;
        match a {
            "--threads" => threads = cmdline::number("blk-io", "T", v, 1..=16)?,
            "--blocks" => blocks = cmdline::number("blk-io", "N", v, 1..=256)?,
            _ => return Err(usage().into()),
        }
    }
    let dev =
        DEVICE.lock().clone().ok_or_else(|| ArgError("blk-io: no block device: run blk-stack LAYERS first".into()))?;
    if threads * blocks > dev.sectors() {
        return Err(failed(alloc::format!("{threads} x {blocks} blocks do not fit in {} sectors", dev.sectors())));
    }
    let seed = ROUND.fetch_add(1, Ordering::Relaxed);
    let before = extra::stats().counts;
    let jobs: Vec<Arc<IoJob>> = (0..threads)
        .map(|t| {
            Arc::new(IoJob {
                dev: dev.clone(),
                first: t * blocks,
                blocks,
                seed,
                counts: IrqMutex::new(IoCounts::default()),
                written: IrqMutex::new(Vec::new()),
            })
        })
        .collect();
    let mut pids = Vec::new();
    if hold {
        crate::block::ramdisk::hold_next();
    }
    for (t, job) in jobs.iter().enumerate() {
        let arg = Arc::into_raw(job.clone()) as u64;
        match sched::spawn(&alloc::format!("blk-io/{t}"), io_thread, arg) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                // SAFETY: the count leaked for the thread that did not start.
                drop(unsafe { Arc::from_raw(arg as *const IoJob) });
                return Err(failed(e));
            }
        }
    }
    if hold {
        look_while_held(pids[0]);
    }
    for (t, (&pid, job)) in pids.iter().zip(&jobs).enumerate() {
        let ended = sched::join(pid).map_err(|e| failed(alloc::format!("{e:?}")))?;
        let c = *job.counts.lock();
        let how = match ended {
            Ended::Exited(_) => "done",
            Ended::Killed => "KILLED by an oops",
        };
        println!(
            "blk-io/{t} ({pid}): {how}: {} written, {} -EIO; {} read back intact, {} -EIO, {} bad; {}",
            c.written,
            c.write_eio,
            c.verified,
            c.read_eio,
            c.bad,
            describe(&c.depth)
        );
    }
    let after = extra::stats().counts;
    println!(
        "blk-io: extra stacks: {} switches, {} -EIO, most in use at once {} (of {})",
        after.switches - before.switches,
        after.eio - before.eio,
        after.high_water,
        after.total
    );
    // Every block reported written is read back by a fresh thread, one
    // at a time: nothing may be lost silently.
    let all: Vec<(u64, u64)> =
        jobs.iter().flat_map(|j| j.written.lock().iter().map(|&s| (s, j.seed)).collect::<Vec<_>>()).collect();
    let check = Arc::new(VerifyJob { dev, sectors: all, result: IrqMutex::new([0; 3]) });
    let arg = Arc::into_raw(check.clone()) as u64;
    let pid = sched::spawn("blk-verify", verify_thread, arg).map_err(failed)?;
    let ended = sched::join(pid).map_err(|e| failed(alloc::format!("{e:?}")))?;
    let [intact, eio, bad] = *check.result.lock();
    let killed = if ended == Ended::Killed { " (KILLED by an oops)" } else { "" };
    println!(
        "blk-io: verify{killed}: {} blocks reported written: {intact} read back intact, {eio} -EIO, {bad} bad, {} not read",
        check.sectors.len(),
        check.sectors.len() as u64 - intact - eio - bad
    );
    Ok(())
}

/// `blk-io --hold`: the first request to reach the RAM disk is held there;
/// meanwhile its submitter sleeps — on an extra stack if the stack is deep.
/// Show it as `ps` and `bt` see it, try to shrink the pool under it, let go.
fn look_while_held(pid: sched::Pid) {
    if !crate::time::spin_until(5000, crate::block::ramdisk::holding) {
        println!("blk-io: no request reached the disk within 5 s");
        crate::block::ramdisk::release();
        return;
    }
    println!("blk-io: holding the first request at the RAM disk; its submitter sleeps:");
    let pid = alloc::format!("{pid}");
    for r in [super::threads::ps(&[]), super::backtraces::bt(&[&pid])] {
        if let Err(CmdError::Failed(e)) = r {
            println!("blk-io: {e}");
        }
    }
    if let Err(e) = extra::resize(0) {
        let why = match e {
            extra::Resize::Refused(r) => alloc::format!("{r}"),
            extra::Resize::NoMemory(m) => alloc::format!("{m}"),
        };
        println!("blk-io: extra-stacks 0 while it sleeps: refused: {why}");
    }
    crate::block::ramdisk::release();
}

struct VerifyJob {
    dev: Dev,
    sectors: Vec<(u64, u64)>,
    /// Intact, -EIO, bad.
    result: IrqMutex<[u64; 3]>,
}

fn verify_thread(arg: u64) -> i64 {
    // SAFETY: `blk_io` leaked one strong count for this thread.
    let job = unsafe { Arc::from_raw(arg as *const VerifyJob) };
    let mut want = [0u8; SECTOR_SIZE];
    for &(sector, seed) in &job.sectors {
        let mut bio = Bio::new(Op::Read, sector);
        let r = submit_bio(&*job.dev, &mut bio);
        map::pattern(sector, seed, &mut want);
        let i = match r {
            Ok(()) if bio.data[..] == want[..] => 0,
            Ok(()) => 2,
            Err(_) => 1,
        };
        job.result.lock()[i] += 1;
    }
    0
}

// --- extra-stacks: the pool ----------------------------------------------------

/// `extra-stacks [N | on | off | threshold BYTES]`.
pub fn extra_stacks(args: &[&str]) -> CmdResult {
    let usage = || {
        ArgError(alloc::format!(
            "extra-stacks: usage: extra-stacks [N | on | off | threshold BYTES] (N 0 to {MAX_EXTRA_STACKS})"
        ))
    };
    match args {
        [] => {}
        ["on"] => extra::set_enabled(true),
        ["off"] => extra::set_enabled(false),
        ["threshold", b] => extra::set_threshold(cmdline::number("extra-stacks", "BYTES", b, 0..=THREAD_SIZE)?),
        [n] if n.bytes().all(|b| b.is_ascii_digit()) => {
            let n = cmdline::number("extra-stacks", "N", n, 0..=MAX_EXTRA_STACKS as u64)? as usize;
            extra::resize(n).map_err(|e| match e {
                extra::Resize::Refused(r) => failed(r),
                extra::Resize::NoMemory(m) => failed(m),
            })?;
        }
        _ => return Err(usage().into()),
    }
    show_pool();
    Ok(())
}

fn show_pool() {
    let s = extra::stats();
    let c = s.counts;
    println!(
        "extra stacks: {} total, {} free, {} in use, high-water {}, {} switches, {} -EIO; check {}, threshold {} bytes",
        c.total,
        c.free(),
        c.in_use,
        c.high_water,
        c.switches,
        c.eio,
        if s.enabled { "on" } else { "off" },
        s.threshold
    );
    for r in extra::rows() {
        println!(
            "  cpu {} {:016x}-{:016x} {:<6} deepest use {} bytes",
            r.cpu,
            r.bottom,
            r.top - 1,
            if r.in_use { "in use" } else { "free" },
            r.deepest
        );
    }
}

/// `extrastacks PER_CPU [THRESHOLD]`: boot parameter (first on the command
/// line): PER_CPU extra stacks for each online CPU, and the threshold.
pub fn extrastacks(args: &[&str]) -> CmdResult {
    let usage = || ArgError("extrastacks: usage: extrastacks PER_CPU [THRESHOLD]".into());
    let (per_cpu, threshold) = match args {
        [n] => (n, None),
        [n, t] => (n, Some(t)),
        _ => return Err(usage().into()),
    };
    let cpus = crate::arch::percpu::online_cpus().count() as u64;
    let per_cpu = cmdline::number("extrastacks", "PER_CPU", per_cpu, 0..=MAX_EXTRA_STACKS as u64 / cpus)?;
    if let Some(t) = threshold {
        extra::set_threshold(cmdline::number("extrastacks", "THRESHOLD", t, 0..=THREAD_SIZE)?);
    }
    // Down to none first, so the new ones are dealt to the CPUs in turn.
    extra::resize(0).and_then(|()| extra::resize((per_cpu * cpus) as usize)).map_err(|e| {
        failed(match e {
            extra::Resize::Refused(r) => alloc::format!("{r}"),
            extra::Resize::NoMemory(m) => alloc::format!("{m}"),
        })
    })?;
    show_pool();
    Ok(())
}

/// Recurse with 256 bytes a level, forever: the guard page ends it.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_forever(depth: u64) -> u64 {
    let mut frame = [depth as u8; 256];
    black_box(&mut frame);
    recurse_forever(depth + 1).wrapping_add(u64::from(black_box(frame)[0]))
}

fn extra_overflow_thread(_: u64) -> i64 {
    match crate::sched::task_stack::call_on_extra_stack(|| recurse_forever(0) as i64) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// `extra-overflow`: a thread takes an extra stack and recurses into its
/// guard page: `BUG: EXTRA stack guard page was hit`, the thread dies, and
/// its reaper gives the stack back to the pool.
pub fn extra_overflow(args: &[&str]) -> CmdResult {
    cmdline::no_args("extra-overflow", args)?;
    let pid = sched::spawn("extra-overflow", extra_overflow_thread, 0).map_err(failed)?;
    match sched::join(pid).map_err(|e| failed(alloc::format!("{e:?}")))? {
        Ended::Killed => println!("extra-overflow: thread extra-overflow ({pid}) was killed and reaped"),
        Ended::Exited(1) => return Err(failed("no free extra stack")),
        Ended::Exited(c) => return Err(failed(alloc::format!("thread exited with {c}"))),
    }
    show_pool();
    Ok(())
}

// --- Mixed stack sizes ---------------------------------------------------------------

/// `child-stack-size [PID] SIZE`: the stack size the children of PID (or
/// of the shell) get from now on; inherited by theirs.
pub fn child_stack_size(args: &[&str]) -> CmdResult {
    let (pid, size) = match args {
        [size] => (None, size),
        [pid, size] => (Some(cmdline::number("child-stack-size", "PID", pid, 0..=u64::from(u32::MAX))? as u32), size),
        _ => return Err(ArgError("child-stack-size: usage: child-stack-size [PID] 4K|8K|16K|32K".into()).into()),
    };
    let size = cmdline::stack_size("child-stack-size", size)?;
    sched::set_child_stack_size(pid, size)
        .map_err(|_| ArgError(alloc::format!("child-stack-size: no task {} (see ps)", pid.unwrap_or(0))))?;
    match pid {
        None => println!("child-stack-size: children of this shell get {} KiB stacks", size / 1024),
        Some(p) => println!("child-stack-size: children of pid {p} get {} KiB stacks", size / 1024),
    }
    Ok(())
}

/// 256 bytes of locals per level, as a deep kernel call chain has.
#[inline(never)]
fn deep(levels: u64) -> u64 {
    let mut frame = [levels; 32];
    black_box(&mut frame);
    if levels == 0 {
        return 0;
    }
    deep(levels - 1).wrapping_add(black_box(frame)[(levels % 32) as usize])
}

/// A worker: `deep(levels)`, then report how much of its stack it used
/// (its exit code: stack size minus `stack_not_used`).
fn deep_worker(levels: u64) -> i64 {
    black_box(deep(levels));
    let me = sched::current().expect("a thread");
    (me.stack.size() - me.stack_not_used()) as i64
}

/// Spawn `deep_worker(levels)` on the stack given and wait: Some(bytes used)
/// or None if an oops killed it.
fn run_deep(name: &str, levels: u64, stack: StackRequest) -> Result<Option<u64>, CmdError> {
    let pid = sched::spawn_with_stack(name, deep_worker, levels, Placement::Any, stack).map_err(failed)?;
    match sched::join(pid).map_err(|e| failed(alloc::format!("{e:?}")))? {
        Ended::Exited(used) => Ok(Some(used as u64)),
        Ended::Killed => Ok(None),
    }
}

/// Levels of `deep` for the stack-conservative worker and the deep one.
const SHALLOW_LEVELS: u64 = 4;
const DEEP_LEVELS: u64 = 24;

/// `stack-sizes`: Tim Bird's mixed sizes — a stack-conservative worker on
/// 4 KiB, a deep one on 16 KiB, then the deep work on 4 KiB.
pub fn stack_sizes(args: &[&str]) -> CmdResult {
    cmdline::no_args("stack-sizes", args)?;
    let sized = |size| StackRequest { size, limit: None };
    let runs =
        [("shallow-4K", SHALLOW_LEVELS, 4096), ("deep-16K", DEEP_LEVELS, THREAD_SIZE), ("deep-4K", DEEP_LEVELS, 4096)];
    for (name, levels, size) in runs {
        match run_deep(name, levels, sized(size))? {
            Some(used) => println!("stack-sizes: {name}: {levels} levels on {size} bytes: done, used {used} bytes"),
            None => println!("stack-sizes: {name}: {levels} levels on {size} bytes: overflowed, killed"),
        }
    }
    Ok(())
}

// --- Stack limit ---------------------------------------------------------------------

/// `stack-limit-default BYTES|off`: boot parameter: every new 16 KiB
/// thread gets this stack limit unless spawned with its own.
pub fn stack_limit_default(args: &[&str]) -> CmdResult {
    let limit = match args {
        ["off"] => None,
        [b] => Some(cmdline::stack_limit("stack-limit-default", b)?),
        _ => return Err(ArgError("stack-limit-default: usage: stack-limit-default BYTES|off".into()).into()),
    };
    thread::set_default_limit(limit);
    match limit {
        Some(l) => println!("stack-limit-default: new threads get {l} bytes of their {THREAD_SIZE}-byte stack"),
        None => println!("stack-limit-default: off"),
    }
    Ok(())
}

/// Workloads for `stack-limit-search`.
#[derive(Clone, Copy)]
enum Workload {
    Deep(u64),
    BlkIo,
}

/// One blk-io of 4 blocks on the current device, pool check off (the
/// question is what the bare path needs): exit code = bytes of stack used.
fn blk_worker(_: u64) -> i64 {
    let Some(dev) = DEVICE.lock().clone() else { return -1 };
    for sector in 0..4 {
        let mut bio = Bio::new(Op::Write, sector);
        map::pattern(sector, 0, &mut bio.data[..]);
        if submit_bio(&*dev, &mut bio).is_err() {
            return -1;
        }
        let mut back = Bio::new(Op::Read, sector);
        if submit_bio(&*dev, &mut back).is_err() || back.data != bio.data {
            return -1;
        }
    }
    let me = sched::current().expect("a thread");
    (me.stack.size() - me.stack_not_used()) as i64
}

fn try_workload(w: Workload, limit: Option<u64>) -> Result<Option<u64>, CmdError> {
    let stack = StackRequest { size: THREAD_SIZE, limit };
    let (entry, arg): (sched::Entry, u64) = match w {
        Workload::Deep(n) => (deep_worker, n),
        Workload::BlkIo => (blk_worker, 0),
    };
    let pid = sched::spawn_with_stack("limit-probe", entry, arg, Placement::Any, stack).map_err(failed)?;
    match sched::join(pid).map_err(|e| failed(alloc::format!("{e:?}")))? {
        Ended::Exited(code) if code >= 0 => Ok(Some(code as u64)),
        Ended::Exited(_) => Err(failed("the workload failed without a stack limit problem")),
        Ended::Killed => Ok(None),
    }
}

/// `stack-limit-search deep LEVELS | blk-io`: the smallest stack limit under
/// which the workload completes, by bisection, beside what the usage
/// accounting says it used on a full stack.
pub fn stack_limit_search(args: &[&str]) -> CmdResult {
    use crate::layout::{STACK_LIMIT_ALIGN as STEP, STACK_LIMIT_MAX, STACK_LIMIT_MIN};
    let w = match args {
        ["deep", n] => Workload::Deep(cmdline::number("stack-limit-search", "LEVELS", n, 0..=40)?),
        ["blk-io"] => Workload::BlkIo,
        _ => return Err(ArgError("stack-limit-search: usage: stack-limit-search deep LEVELS | blk-io".into()).into()),
    };
    if matches!(w, Workload::BlkIo) && DEVICE.lock().is_none() {
        return Err(ArgError("stack-limit-search: no block device: run blk-stack LAYERS first".into()).into());
    }
    let was_on = extra::stats().enabled;
    extra::set_enabled(false);
    let result = (|| {
        let used = try_workload(w, None)?.ok_or_else(|| failed("the workload overflows a whole 16 KiB stack"))?;
        let (mut lo, mut hi) = (STACK_LIMIT_MIN, STACK_LIMIT_MAX);
        if try_workload(w, Some(hi))?.is_none() {
            return Err(failed(alloc::format!("needs more than the largest limit, {hi} bytes")));
        }
        let mut trials = 1;
        while lo < hi {
            let mid = (lo + hi) / 2 / STEP * STEP;
            trials += 1;
            let ok = try_workload(w, Some(mid))?.is_some();
            println!("stack-limit-search: limit {mid}: {}", if ok { "completes" } else { "exceeded" });
            if ok {
                hi = mid;
            } else {
                lo = mid + STEP;
            }
        }
        println!(
            "stack-limit-search: smallest limit that completes: {hi} bytes ({trials} trials); usage accounting on a full stack: {used} bytes used"
        );
        Ok(())
    })();
    extra::set_enabled(was_on);
    result
}

// --- threads-fit: the memory case for small stacks ------------------------------------

/// Stacks allocated per size to measure what one costs.
const FIT_SAMPLE: u64 = 32;

/// `threads-fit`: per stack size, the physical memory one thread costs
/// (its stack's frames measured over FIT_SAMPLE allocations, page tables
/// included; the guard pages cost none) plus its task structure, and how
/// many such threads the usable memory holds.
pub fn threads_fit(args: &[&str]) -> CmdResult {
    cmdline::no_args("threads-fit", args)?;
    let (usable, _) = phys::counts();
    let usable_bytes = usable * PAGE_SIZE;
    let task = core::mem::size_of::<sched::Task>() as u64;
    println!(
        "threads-fit: {} KiB usable memory; a task structure is {task} bytes; guard pages are virtual only",
        usable_bytes / 1024
    );
    println!("stack    frames/stack  bytes/thread  threads that fit");
    for size in THREAD_STACK_SIZES {
        thread::drain_cache();
        let before = phys::counts().1;
        let stacks: Vec<_> =
            (0..FIT_SAMPLE).map(|_| thread::alloc_sized(size, None)).collect::<Result<_, _>>().map_err(failed)?;
        let frames = before - phys::counts().1;
        stacks.into_iter().for_each(thread::free);
        thread::drain_cache();
        // Per stack, in hundredths of a frame (page-table pages are shared).
        let per_thread = frames * PAGE_SIZE / FIT_SAMPLE + task;
        println!(
            "{:>3} KiB  {:>5}.{:02}        {:>8}      {:>8}",
            size / 1024,
            frames / FIT_SAMPLE,
            frames * 100 / FIT_SAMPLE % 100,
            per_thread,
            usable_bytes / per_thread
        );
    }
    Ok(())
}
