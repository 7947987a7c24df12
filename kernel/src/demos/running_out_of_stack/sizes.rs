//! Tim Bird's mixed stack sizes: what children get, and a deep worker on
//! each size.

use super::*;

/// `child-stack-size [PID] SIZE`: the stack size the children of PID (or
/// of the shell) get from now on; inherited by theirs.
pub fn child_stack_size(args: &[&str]) -> CmdResult {
    let (pid, size) = match args {
        [size] => (None, size),
        [pid, size] => (Some(cmdline::number("PID", pid, 0..=u64::from(u32::MAX))? as u32), size),
        _ => return Err(ArgError::usage().into()),
    };
    let size = cmdline::stack_size(size)?;
    sched::set_child_stack_size(pid, size)
        .map_err(|_| ArgError::Invalid(alloc::format!("no task {} (see ps)", pid.unwrap_or(0))))?;
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
pub(super) fn deep_worker(levels: u64) -> i64 {
    black_box(deep(levels));
    let me = sched::current().expect("a thread");
    (me.stack.size() - me.stack_not_used()) as i64
}

/// Spawn `deep_worker(levels)` on the stack given and wait: Some(bytes used)
/// or None if an oops killed it.
fn run_deep(name: &str, levels: u64, stack: StackRequest) -> Result<Option<u64>, CmdError> {
    let pid = sched::spawn_with_stack(name, deep_worker, levels, Placement::Any, stack).map_err(failed)?;
    match sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))? {
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
    cmdline::no_args(args)?;
    let sized = |size| StackRequest { size, limit: None, dynamic: false };
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
