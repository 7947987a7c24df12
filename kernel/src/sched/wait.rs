//! Sleeping and waking (Linux `wait_event` / `wake_up`, `schedule_timeout`).
//!
//! A sleeping task names what it waits for with a typed key: a `WaitQueue`
//! (a static owned by whoever wakes it: the console's input, each CPU's
//! ksoftirqd) or the exit of a task (`join`). No numbers to pick by hand.
//! Waking takes the sleeper's run-queue lock, under which it went to sleep.

use core::sync::atomic::Ordering;

use super::runqueue::{rq, schedule_with, TaskRef, TASKS};
use super::task::{Pid, State, Task};
use crate::arch::percpu::{self, this_cpu};
use crate::layout::MAX_CPUS;
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

/// Wake every task waiting on `key`, on whichever CPU it sleeps (Linux
/// `wake_up`): TASKS, then each sleeper's run-queue lock.
pub(super) fn wake_up_key(key: WaitKey) {
    let me = percpu::current_cpu_id();
    let mut kick = 0u64;
    let mut tasks = TASKS.lock();
    // No unlocked look at `state` first: a sleeper sets Sleeping inside
    // `schedule_with`, under its run-queue lock, right after checking its
    // condition. Skipping a task that is not Sleeping *yet* would lose the
    // wake-up (the sleeper saw the condition false just before the waker
    // made it true). Taking the lock either finds it asleep, or makes it
    // check its condition after the waker changed it. Only ended tasks,
    // which never sleep again, are skipped.
    for t in tasks.tasks.values_mut() {
        if t.state.get().ended() {
            continue;
        }
        let mut q = rq(t.cpu);
        if t.state.get() == State::Sleeping && t.waiting_on == Some(key) {
            q.make_runnable(t);
            if t.cpu != me {
                kick |= 1 << t.cpu;
            }
        }
    }
    drop(tasks);
    (0..MAX_CPUS).filter(|c| kick & (1 << c) != 0).for_each(crate::smp::send_reschedule);
}

/// `prev` has ended: wake the task waiting in `join` for it, if one is
/// (Linux `do_notify_parent` wakes the parent's `wait_chldexit` queue, not
/// every sleeper). `join` stores itself in `prev.joiner` and then, under
/// its run-queue lock, checks whether `prev` ended before it sleeps;
/// `prev` was marked ended before it switched away, then this fence, then
/// the load: of the two, at least one sees the other's store, so the
/// joiner either does not sleep or is woken here (under the same lock).
#[instrument_fn = "off"]
pub(super) fn wake_joiner(prev: &Task) {
    core::sync::atomic::fence(Ordering::SeqCst);
    let joiner = TaskRef::from_addr(prev.joiner.load(Ordering::SeqCst));
    if joiner == TaskRef::NONE {
        return;
    }
    // SAFETY: the joiner stays in `join`, alive, until `prev.on_cpu` is
    // cleared (after this); its CPU's run-queue lock is taken right below.
    let cpu = unsafe { joiner.get() }.cpu;
    let mut q = rq(cpu);
    // SAFETY: as above, now under the lock of its CPU.
    let j = unsafe { joiner.get() };
    if j.state.get() == State::Sleeping && j.waiting_on == Some(WaitKey::Exit(prev.pid)) {
        q.make_runnable(j);
    }
    drop(q);
    if cpu != percpu::current_cpu_id() {
        crate::smp::send_reschedule(cpu);
    }
}
