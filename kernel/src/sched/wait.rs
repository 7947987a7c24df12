//! Sleeping and waking (Linux `wait_event` / `wake_up`, `schedule_timeout`).
//!
//! A sleeping task names what it waits for with a typed key: a `WaitQueue`
//! (a static owned by whoever wakes it: the console's input, each CPU's
//! ksoftirqd) or the exit of a task (`join`). No numbers to pick by hand.

use super::runqueue::{rq, schedule_with, wake_up_key, TaskRef};
use super::task::{Pid, State};
use crate::arch::percpu::this_cpu;
use crate::time;

/// What a sleeping task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKey {
    /// A wait queue, by its address.
    Queue(usize),
    /// The end of task `pid` (its joiner waits on this).
    Exit(Pid),
}

/// A wait queue head (Linux `wait_queue_head_t`): sleepers are found by
/// their key, so the queue itself is just a named address.
pub struct WaitQueue {
    /// Names the queue for a reader in gdb; it also gives every queue a
    /// size, so two statics never share the address that is their key.
    pub name: &'static str,
}

impl WaitQueue {
    pub const fn new(name: &'static str) -> WaitQueue {
        WaitQueue { name }
    }

    fn key(&'static self) -> WaitKey {
        WaitKey::Queue(self as *const WaitQueue as usize)
    }

    /// Sleep until `cond` holds. It is checked under the run-queue lock, so
    /// a `wake_up` after the condition became true cannot be lost. `cond`
    /// must not take `TASKS` or a run-queue lock.
    pub fn wait_until(&'static self, cond: impl Fn() -> bool) {
        wait_key_until(self.key(), cond);
    }

    /// Wake every task sleeping on this queue.
    pub fn wake_up(&'static self) {
        wake_up_key(self.key());
    }
}

/// Sleep on `key` until `cond` holds (see `WaitQueue::wait_until`).
pub(super) fn wait_key_until(key: WaitKey, cond: impl Fn() -> bool) {
    loop {
        let mut blocked = false;
        schedule_with(|_, cur| {
            if cond() {
                return false;
            }
            cur.state.set(State::Sleeping);
            cur.waiting_on = Some(key);
            blocked = true;
            true
        });
        if !blocked {
            return;
        }
    }
}

/// Sleep at least `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let until = time::jiffies().saturating_add(time::ms_to_ticks(ms));
    schedule_with(|q, cur| {
        cur.state.set(State::Sleeping);
        cur.wake_at = until;
        q.timed.push(TaskRef::of(cur));
        true
    });
}

/// This CPU's timer softirq: wake its sleepers whose time has come.
pub fn timer_softirq() {
    let now = crate::time::jiffies();
    if super::runqueue::CURRENT.this().load(core::sync::atomic::Ordering::Acquire) == 0 {
        return; // the scheduler has not started on this CPU
    }
    rq(this_cpu().id()).wake_timed(now);
}

/// Wake task `pid` if it sleeps, whatever it waits for (a kill interrupts
/// any sleep, as a fatal signal does in Linux).
pub(super) fn wake_sleeper(pid: Pid) {
    let mut tasks = super::runqueue::TASKS.lock();
    let Some(t) = tasks.tasks.get_mut(&pid) else { return };
    let cpu = t.cpu;
    // Re-checked under the lock that guards the state.
    let mut q = rq(cpu);
    if t.state.get() == State::Sleeping {
        q.make_runnable(t);
    }
    drop(q);
    drop(tasks);
    if cpu != this_cpu().id() {
        crate::smp::send_reschedule(cpu);
    }
}
