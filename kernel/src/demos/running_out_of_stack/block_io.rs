//! blk-stack / blk-io: the nested block-I/O stack.

use super::*;

/// Sectors of the RAM disk at the bottom.
const DISK_SECTORS: u64 = 1024;
/// Most layers `blk-stack` builds.
const MAX_LAYERS: u64 = 64;

/// The device `blk-io` writes to: the top of the last `blk-stack`.
pub(super) static DEVICE: IrqMutex<Option<Dev>> = IrqMutex::new(None);

/// `blk-stack LAYERS`: a RAM disk with LAYERS stacked drivers over it,
/// cycling linear, crypt, integrity, loop, mirror from the bottom up.
pub fn blk_stack(args: &[&str]) -> CmdResult {
    let [n] = args else {
        return Err(ArgError::usage_and(alloc::format!(" (0 to {MAX_LAYERS})")).into());
    };
    let layers = cmdline::number("LAYERS", n, 0..=MAX_LAYERS)?;
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
    let usage = || ArgError::usage_and(" (T 1 to 16, N 1 to 256)");
    let (mut threads, mut blocks, mut hold) = (1, 16, false);
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if a == "--hold" {
            hold = true;
            continue;
        }
        let v = it.next().ok_or_else(usage)?;
        match a {
            "--threads" => threads = cmdline::number("T", v, 1..=16)?,
            "--blocks" => blocks = cmdline::number("N", v, 1..=256)?,
            _ => return Err(usage().into()),
        }
    }
    let dev =
        DEVICE.lock().clone().ok_or_else(|| ArgError::Invalid("no block device: run blk-stack LAYERS first".into()))?;
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
        let ended = sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))?;
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
    let ended = sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))?;
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
    for r in [crate::demos::threads::ps(&[]), crate::demos::backtraces::bt(&[&pid])] {
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
