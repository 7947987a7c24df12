//! Sony's stack limit: a default for new threads, and the search for the
//! smallest limit a workload completes under.

use super::block_io::DEVICE;
use super::sizes::deep_worker;
use super::*;

/// `stack-limit-default BYTES|off`: boot parameter: every new 16 KiB
/// thread gets this stack limit unless spawned with its own.
pub fn stack_limit_default(args: &[&str]) -> CmdResult {
    let limit = match args {
        ["off"] => None,
        [b] => Some(cmdline::stack_limit(b)?),
        _ => return Err(ArgError::usage().into()),
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
    let stack = StackRequest { size: THREAD_SIZE, limit, dynamic: false };
    let (entry, arg): (sched::Entry, u64) = match w {
        Workload::Deep(n) => (deep_worker, n),
        Workload::BlkIo => (blk_worker, 0),
    };
    let pid = sched::spawn_with_stack("limit-probe", entry, arg, Placement::Any, stack).map_err(failed)?;
    match sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))? {
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
        ["deep", n] => Workload::Deep(cmdline::number("LEVELS", n, 0..=40)?),
        ["blk-io"] => Workload::BlkIo,
        _ => return Err(ArgError::usage().into()),
    };
    if matches!(w, Workload::BlkIo) && DEVICE.lock().is_none() {
        return Err(ArgError::Invalid("no block device: run blk-stack LAYERS first".into()).into());
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
