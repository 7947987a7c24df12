//! Fatal signals, the only kind tristack has (Linux `SIGKILL`): `kill PID`
//! and `exit_group` mark every thread of a process, and each thread acts
//! on the mark at its next return to user mode (`user::exit_to_user_mode_work`).
//! Marks are set under the task list's lock, the lock a new thread of the
//! process is added under (`spawn_task` refuses one whose creator is
//! marked), so no thread escapes a kill by being created during it.

use core::sync::atomic::Ordering;

use super::current;
use super::runqueue::TASKS;
use super::task::{self, Pid};
use super::wait::wake_sleeper;

/// Why `kill` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillPidError {
    NoSuchTask,
    /// Kernel threads cannot be killed (Linux ignores SIGKILL to them).
    KernelThread,
}

/// `kill PID` (Linux `SIGKILL`): every thread of PID's process ends at its
/// next return to user mode — at once if it sleeps (it is woken), within a
/// tick if it runs in user mode (the timer interrupt's return takes it).
/// SIGKILL kills the thread group, not one thread.
pub fn kill(pid: Pid) -> Result<(), KillPidError> {
    kill_with(pid, KILLED_BY_SIGKILL)
}

/// As `kill`, with the exit code the threads end with: `KILLED_BY_SIGINT`
/// when the console's Ctrl-C ends the foreground process (`tty`).
pub fn kill_with(pid: Pid, code: i64) -> Result<(), KillPidError> {
    let group: alloc::vec::Vec<Pid> = {
        let tasks = TASKS.lock();
        let task = tasks.tasks.get(&pid).ok_or(KillPidError::NoSuchTask)?;
        if !task.is_user() {
            return Err(KillPidError::KernelThread);
        }
        let tgid = task.tgid;
        tasks
            .tasks
            .values()
            .filter(|t| t.tgid == tgid && t.is_user() && !t.state.get().ended())
            .map(|t| {
                // The first fatal signal wins.
                let _ = t.kill_code.compare_exchange(task::NO_KILL, code, Ordering::SeqCst, Ordering::SeqCst);
                t.pid
            })
            .collect()
    };
    group.iter().for_each(|&pid| wake_sleeper(pid));
    Ok(())
}

/// The exit code of a thread killed by `kill` (as by SIGKILL).
pub const KILLED_BY_SIGKILL: i64 = -9;
/// The exit code of a thread ended by Ctrl-C on the console (as by SIGINT).
pub const KILLED_BY_SIGINT: i64 = -2;

/// End every other thread of the current thread's process with `code`
/// (Linux `zap_other_threads` in `do_group_exit`): each leaves at its next
/// return to user mode. Returns how many were told.
pub fn kill_other_threads(code: i64) -> usize {
    let Some(me) = current() else { return 0 };
    if me.tgid == 0 {
        return 0;
    }
    let others: alloc::vec::Vec<Pid> = {
        let tasks = TASKS.lock();
        tasks
            .tasks
            .values()
            .filter(|t| t.tgid == me.tgid && t.pid != me.pid && !t.state.get().ended())
            .map(|t| {
                // The first fatal signal wins.
                let _ = t.kill_code.compare_exchange(task::NO_KILL, code, Ordering::SeqCst, Ordering::SeqCst);
                t.pid
            })
            .collect()
    };
    others.iter().for_each(|&pid| wake_sleeper(pid));
    others.len()
}

/// The fatal signal pending for the running thread, as its exit code.
pub fn pending_kill() -> Option<i64> {
    super::current_scheduled().map(|t| t.kill_code.load(Ordering::SeqCst)).filter(|&c| c != task::NO_KILL)
}
