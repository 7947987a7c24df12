//! How threads end: `exit`, being killed by an oops, `join` and reaping
//! (Linux `do_exit`, `make_task_dead`, `wait_task_zombie`).
//!
//! An ended task (Zombie, or Dead if an oops killed it) keeps its stack
//! until its parent joins it: the stack can still be read (`bt PID`), and
//! the CPU that switched away from it may still be on it (`on_cpu`).

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::interrupts;

use super::ended::{Ended, JoinError};
use super::runqueue::{current_mut, schedule_with, TASKS};
use super::task::{Pid, State, Task};
use super::wait::{wait_key_until, WaitKey};
use super::{current, INIT_PID};
use crate::arch::percpu::this_cpu;
use crate::arch::switch;
use crate::println;
use crate::stacks::thread;
use crate::stacks::usage::LowWater;
use crate::sync::{Held, IrqMutex, IrqMutexGuard};

/// Free bytes of the deepest thread stack use seen so far (at reaping).
static LOWEST_STACK_FREE: LowWater = LowWater::new();

/// Orphans go to init, which reaps them (Linux `forget_original_parent`).
fn reparent_children(tasks: &mut super::runqueue::TaskList, parent: Pid) {
    for t in tasks.tasks.values_mut().filter(|t| t.parent == parent) {
        t.parent = INIT_PID;
    }
}

/// End the current thread: it becomes a zombie whose stack stays until
/// its parent reaps it with `join` (the CPU's next task wakes the joiner).
pub fn exit(code: i64) -> ! {
    let cur = current_mut();
    if !cur.stack.end_magic_ok() {
        stack_end_corrupted(cur);
    }
    reparent_children(&mut TASKS.lock(), cur.pid);
    cur.exit_code = code;
    schedule_with(|_, cur| {
        cur.state.set(State::Zombie);
        true
    });
    unreachable!("a zombie was scheduled");
}

/// How long the oops path waits for a scheduler lock another CPU holds.
const KILL_LOCK_WAIT_MS: u64 = 1_000;

/// Kills that found a scheduler lock held and had to wait (the ktest
/// checks it forced that case).
static KILL_LOCK_WAITS: AtomicU64 = AtomicU64::new(0);

fn lock_for_kill<T>(lock: &'static IrqMutex<T>) -> Result<IrqMutexGuard<'static, T>, Held> {
    if let Some(guard) = lock.try_lock() {
        return Ok(guard);
    }
    KILL_LOCK_WAITS.fetch_add(1, Ordering::SeqCst);
    lock.lock_bounded(KILL_LOCK_WAIT_MS)
}

/// Why the oops path could not kill the current thread: a scheduler lock
/// it could not take. Printed without allocating.
#[derive(Clone, Copy, Debug)]
pub struct KillError {
    lock: &'static str,
    cpu: usize,
    held: Held,
}

impl core::fmt::Display for KillError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.held {
            Held::ByThisCpu => write!(f, "{} lock of CPU {} held by this CPU", self.lock, self.cpu),
            Held::ByCpu(c) => {
                write!(f, "{} lock of CPU {} held by CPU {c} for {KILL_LOCK_WAIT_MS} ms", self.lock, self.cpu)
            }
        }
    }
}

/// Kill the current thread after an oops (Linux `make_task_dead`): it
/// becomes Dead, its stack stays until it is reaped, and this CPU switches
/// to its next task, never coming back. Another CPU holding a scheduler
/// lock is waited for (a moment, normally); this CPU holding one means the
/// oops hit inside the scheduler: that is returned as the reason to panic.
/// Allocates nothing. The oops hands down what it must do on this CPU
/// before the switch (`reset_cpu`) and once the locks are dropped
/// (`recovered`).
pub fn kill_current(reset_cpu: fn(), recovered: fn()) -> KillError {
    let cpu = this_cpu().id();
    let cur = current_mut();
    match lock_for_kill(&TASKS) {
        Ok(mut tasks) => reparent_children(&mut tasks, cur.pid),
        Err(held) => return KillError { lock: "task list", cpu, held },
    }
    let mut q = match lock_for_kill(super::runqueue::RQ.of(cpu)) {
        Ok(q) => q,
        Err(held) => return KillError { lock: "run-queue", cpu, held },
    };
    cur.exit_code = -11; // as if by SIGSEGV
    cur.state.set(State::Dead);
    reset_cpu();
    let next = q.switch_in_next();
    q.switches += 1;
    println!(
        "oops: killed {} ({}); its stack {:016x}..{:016x} stays until it is reaped",
        cur.name,
        cur.pid,
        cur.stack.bottom,
        cur.stack.top() - 1
    );
    let rsp = next.saved_rsp;
    drop(q);
    interrupts::disable();
    recovered();
    // SAFETY: the dying task's stack (or the #DF stack we are on) is
    // abandoned; next's frame is valid. Next finishes the switch away
    // from `cur` (its joiner is woken, its `on_cpu` cleared).
    unsafe { switch::switch_to_abandon(rsp, cur as *const Task as u64) }
}

/// Wait for thread `pid` to end, then reap it (free its stack). One joiner
/// per task: its parent, or whoever started it.
pub fn join(pid: Pid) -> Result<Ended, JoinError> {
    if current().is_some_and(|c| c.pid == pid) {
        return Err(JoinError::SelfJoin);
    }
    let target: *const Task = match TASKS.lock().tasks.get(&pid) {
        Some(t) => &**t,
        None => return Err(JoinError::NoSuchTask),
    };
    // SAFETY: only its joiner (us) reaps the task, so it lives until below.
    let target = unsafe { &*target };
    // Its end wakes us (`wake_joiner`); the check under our run-queue lock
    // in `wait_key_until` comes after this store.
    let me = current().map_or(0, |t| t as *const Task as u64);
    target.joiner.store(me, Ordering::SeqCst);
    wait_key_until(WaitKey::Exit(pid), || target.state.get().ended());
    // Its CPU may still be leaving its stack (Linux waits on `on_cpu` too).
    while target.on_cpu.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // Nobody may be walking its stack (`bt PID` pins it, under TASKS).
    let task = loop {
        let mut tasks = TASKS.lock();
        if target.stack_pins.load(Ordering::Acquire) == 0 {
            break tasks.tasks.remove(&pid).expect("only its joiner reaps a task");
        }
        drop(tasks);
        super::yield_now();
    };
    let how = if task.state.get() == State::Dead { Ended::Killed } else { Ended::Exited(task.exit_code) };
    // Killed while on extra stacks: they stayed readable until now.
    crate::stacks::extra::release_chain(task.extra_top.load(Ordering::Relaxed));
    // The stack is no longer in use: one scan tells how deep the thread
    // went, exit path included, and what a reuse of it must clear.
    let scan = task.stack.scan();
    if how != Ended::Killed {
        check_stack_usage(&task, task.stack_not_used_given(scan.untouched));
    }
    thread::free_scanned(task.stack, scan);
    Ok(how)
}

/// Linux `check_stack_usage` (which runs at exit; here at reaping, when the
/// whole stack can be read at rest): a thread that set a new system-wide
/// low of free stack says so. Not for a thread an oops killed (its depth
/// is the oops's).
fn check_stack_usage(task: &Task, free: u64) {
    if LOWEST_STACK_FREE.record(free) {
        println!("{} ({}) used greatest stack depth: {free} bytes left", task.name, task.pid);
    }
}

/// Reap every ended child of the current task (the shell does this before
/// each command, as init reaps orphans); returns how many.
pub fn reap_children() -> usize {
    let me = current().map_or(0, |t| t.pid);
    let ended: alloc::vec::Vec<Pid> =
        TASKS.lock().tasks.values().filter(|t| t.parent == me && t.state.get().ended()).map(|t| t.pid).collect();
    ended.iter().filter(|&&pid| join(pid).is_ok()).count()
}

/// The end magic of `task`'s stack is gone: say so, then BUG (ud2 → #UD →
/// oops), which kills the task like any other oops.
pub(super) fn stack_end_corrupted(task: &Task) -> ! {
    interrupts::disable();
    println!(
        "Thread overran stack, or stack corrupted: {} ({}) stack end {:016x} holds {:#x}",
        task.name,
        task.pid,
        task.stack.bottom,
        // SAFETY: the stack bottom is mapped.
        unsafe { (task.stack.bottom as *const u64).read_volatile() }
    );
    // SAFETY: deliberately fatal (Linux BUG()).
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    unreachable!()
}

pub mod ktests;
