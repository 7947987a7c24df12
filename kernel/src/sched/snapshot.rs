//! A copy of every task for `ps`, `stacks` and `bt PID`, taken under the
//! task list lock (Linux walks the task list under RCU for sysrq-t).

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::runqueue::{rq, TASKS};
use super::task::{Pid, State, Task};
use crate::arch::percpu::this_cpu;
use crate::arch::switch;
use crate::layout::MAX_CPUS;
use crate::stacks::thread;

/// A snapshot of one task for `ps` and `stacks`.
pub struct TaskInfo {
    pub pid: Pid,
    pub name: super::task::Comm,
    pub parent: Pid,
    /// Its process (thread group) id: its own pid for a kernel thread.
    pub tgid: Pid,
    pub state: State,
    pub cpu: usize,
    /// Where a task that is not running will resume.
    pub saved_pc: Option<u64>,
    pub stack: thread::ThreadStack,
    pub stack_free: u64,
    /// A thread of a user process.
    pub user: bool,
    /// Executing user code right now (its kernel stack is empty).
    pub in_user: bool,
    /// The top of the extra stack it runs on (0: its own stack).
    pub extra_top: u64,
}

fn info(t: &Task) -> TaskInfo {
    let state = t.state.get();
    TaskInfo {
        pid: t.pid,
        name: t.name,
        parent: t.parent,
        tgid: if t.is_user() { t.tgid } else { t.pid },
        state,
        cpu: t.cpu,
        // SAFETY: a task that is not running has a switch frame at saved_rsp.
        saved_pc: (state != State::Running && !t.on_cpu.load(Ordering::Acquire))
            .then(|| unsafe { switch::saved_pc(t.saved_rsp) }),
        stack: t.stack,
        stack_free: t.stack_not_used(),
        user: t.is_user(),
        in_user: t.in_user.load(Ordering::Relaxed),
        extra_top: t.extra_top.load(Ordering::Relaxed),
    }
}

/// Every task: each CPU's idle task, then the others by pid. Each is read
/// under its CPU's run-queue lock, so none switches while it is copied.
pub fn snapshot() -> Vec<TaskInfo> {
    let tasks = TASKS.lock();
    let mut all: Vec<TaskInfo> = (0..MAX_CPUS).filter_map(|c| rq(c).idle.as_deref().map(info)).collect();
    all.extend(tasks.tasks.values().map(|t| {
        let _q = rq(t.cpu);
        info(t)
    }));
    all
}

/// A task that is not running, with its stack pinned (Linux
/// `try_get_task_stack`) until this is dropped: `join` does not free the
/// stack meanwhile, even if the task runs, exits and is reaped on another
/// CPU while its stack is being walked.
pub struct SavedContext {
    pub name: super::task::Comm,
    pub saved_rsp: u64,
    /// The RBP slot of its switch frame: a frame record for the unwinder.
    pub rbp_slot: u64,
    task: *const Task,
}

impl Drop for SavedContext {
    fn drop(&mut self) {
        // SAFETY: a pinned task is not freed before its pins are dropped.
        unsafe { &*self.task }.stack_pins.fetch_sub(1, Ordering::Release);
    }
}

/// The saved context of task `pid` if it is not running, its stack pinned.
pub fn saved_context(pid: Pid) -> Option<SavedContext> {
    let tasks = TASKS.lock();
    let cpu = tasks.tasks.get(&pid).map_or(this_cpu().id(), |t| t.cpu);
    let q = rq(cpu);
    let t = match tasks.tasks.get(&pid) {
        Some(t) => &**t,
        None if pid == 0 => q.idle.as_deref()?,
        None => return None,
    };
    (t.state.get() != State::Running && !t.on_cpu.load(Ordering::Acquire)).then(|| {
        // Under TASKS: `join` removes a task under it only when unpinned.
        t.stack_pins.fetch_add(1, Ordering::Acquire);
        SavedContext {
            name: t.name,
            saved_rsp: t.saved_rsp,
            rbp_slot: t.saved_rsp + 8 * (switch::SWITCH_FRAME_WORDS as u64 - 1),
            task: t,
        }
    })
}
