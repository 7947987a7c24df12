//! Per-CPU run queues and the switch (Linux `kernel/sched/core.c`:
//! `struct rq`, `__schedule`, `finish_task_switch`).
//!
//! Locks, and the one order they are taken in:
//! 1. `TASKS` (Linux `tasklist_lock`): the pid table, parents, pid numbers;
//! 2. `RQ[cpu]` (Linux `rq->lock`), one per CPU: its queue of runnable
//!    tasks, its idle task, its timed sleepers, and the `state`,
//!    `wake_at` and `waiting_on` of every task placed on that CPU.
//!
//! Tasks never migrate, so `schedule` takes only its own CPU's lock. Code
//! that holds an `RQ` lock never takes `TASKS`.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::interrupts;

use super::task::{Pid, State, Task};
use crate::arch::percpu::{self, this_cpu};
use crate::arch::switch;
use crate::sync::IrqMutex;

// This CPU's scheduling state (Linux `current_task`, `TIF_NEED_RESCHED`),
// owned here; one `define_per_cpu!` each.
crate::define_per_cpu! {
    /// The running task (`Task`), null before the scheduler starts on this CPU.
    pub static CURRENT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}
crate::define_per_cpu! {
    /// A task was queued on this CPU, or its time slice is over: the next
    /// IRQ exit to a thread (or the idle loop) schedules. Cleared by
    /// `schedule`, under the run-queue lock.
    pub static NEED_RESCHED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
}

/// A task on a run queue. Tasks are boxed and never move; one is freed only
/// when reaped, after it ended and left every queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct TaskRef(*mut Task);

// SAFETY: a TaskRef is only dereferenced under the lock of the queue that
// holds it (or by the task's own CPU), never after the task is reaped.
unsafe impl Send for TaskRef {}

impl TaskRef {
    pub(super) const NONE: TaskRef = TaskRef(core::ptr::null_mut());

    pub(super) fn of(task: &mut Task) -> TaskRef {
        TaskRef(task)
    }

    /// A task named by its address (`Task::joiner`); 0 is `NONE`.
    pub(super) fn from_addr(addr: u64) -> TaskRef {
        TaskRef(addr as *mut Task)
    }

    /// # Safety
    /// The caller holds the run-queue lock of the task's CPU (or is that
    /// task), and the task is not reaped meanwhile.
    pub(super) unsafe fn get(self) -> &'static mut Task {
        // SAFETY: per the contract.
        unsafe { &mut *self.0 }
    }
}

pub(super) struct TaskList {
    pub(super) tasks: BTreeMap<Pid, Box<Task>>,
    pub(super) next_pid: Pid,
}

pub(super) static TASKS: IrqMutex<TaskList> =
    IrqMutex::new(TaskList { tasks: BTreeMap::new(), next_pid: super::INIT_PID });

/// Tasks in order, linked through their `run_next` (Linux links its run
/// queues through the tasks too, `sched_rt_entity.run_list`): queueing and
/// taking the next are a few stores, with no allocation under the lock.
struct TaskQueue {
    head: TaskRef,
    tail: TaskRef,
}

impl TaskQueue {
    const fn new() -> Self {
        TaskQueue { head: TaskRef::NONE, tail: TaskRef::NONE }
    }

    fn push_back(&mut self, task: &mut Task) {
        task.run_next = TaskRef::NONE;
        // SAFETY: the tail is a queued task, alive (the caller holds the lock).
        match unsafe { self.tail.0.as_mut() } {
            Some(tail) => tail.run_next = TaskRef::of(task),
            None => self.head = TaskRef::of(task),
        }
        self.tail = TaskRef::of(task);
    }

    fn pop_front(&mut self) -> Option<TaskRef> {
        // SAFETY: the head is a queued task, alive (the caller holds the lock).
        let head = unsafe { self.head.0.as_mut() }?;
        self.head = head.run_next;
        if self.head == TaskRef::NONE {
            self.tail = TaskRef::NONE;
        }
        Some(TaskRef::of(head))
    }
}

pub(super) struct RunQueue {
    /// Runnable tasks of this CPU, in order; a task is here iff Runnable.
    queue: TaskQueue,
    /// This CPU's idle task (pid 0, as in Linux), run when `queue` is empty.
    pub(super) idle: Option<Box<Task>>,
    /// Sleepers with a timeout (`sleep_ms`), woken by this CPU's tick.
    pub(super) timed: Vec<TaskRef>,
    pub(super) switches: u64,
}

crate::define_per_cpu! {
    /// This CPU's run queue (Linux `runqueues`).
    pub(super) static RQ: IrqMutex<RunQueue> =
        IrqMutex::new(RunQueue { queue: TaskQueue::new(), idle: None, timed: Vec::new(), switches: 0 });
}

impl RunQueue {
    /// Make `task` (placed on this queue's CPU) runnable and queue it.
    pub(super) fn make_runnable(&mut self, task: &mut Task) {
        if matches!(task.state.get(), State::Runnable | State::Running) || task.state.get().ended() {
            return;
        }
        task.wake_at = 0;
        task.waiting_on = None;
        task.state.set(State::Runnable);
        self.timed.retain(|&t| t != TaskRef::of(task));
        self.queue.push_back(task);
        set_need_resched(task.cpu);
    }

    /// Queue a task that was just created (state Runnable already).
    pub(super) fn enqueue_new(&mut self, task: &mut Task) {
        self.queue.push_back(task);
        set_need_resched(task.cpu);
    }

    /// Take the next runnable task off the queue (or the idle task) and mark
    /// it running; it becomes this CPU's `current` in `finish_switch`, once
    /// RSP is on its stack (until then NMI traces name the task whose stack
    /// they walk).
    #[instrument_fn = "off"]
    #[inline(always)]
    pub(super) fn switch_in_next(&mut self) -> &'static mut Task {
        let next = match self.queue.pop_front() {
            // SAFETY: queued tasks are alive and ours (we hold the lock).
            Some(t) => unsafe { t.get() },
            None => {
                let idle: &mut Task = self.idle.as_mut().expect("idle task");
                // SAFETY: the idle task is boxed in this queue and never freed.
                unsafe { TaskRef::of(idle).get() }
            }
        };
        next.state.set(State::Running);
        next.on_cpu.store(true, Ordering::Release);
        crate::arch::gdt::set_top_of_stack(next.stack.top());
        // Stack erasing follows user threads only: a kernel thread never
        // returns to user mode, and while it runs `mcount` leaves the
        // loaded record alone (its RSPs lie outside that record's stack).
        if next.is_user() {
            crate::arch::stackleak::start(&next.stackleak);
        }
        // The next task's address space (a user process's, or the kernel's
        // for a kernel thread; the kernel half is the same in both, so this
        // stack and every other stays mapped across the write).
        crate::mm::address_space::switch_mm(next.address_space());
        crate::arch::debug::switch_user_watch(next.user_watch.load(Ordering::Relaxed));
        next
    }

    /// Wake this CPU's timed sleepers whose time has come.
    pub(super) fn wake_timed(&mut self, now: u64) {
        let due: Vec<TaskRef> = self
            .timed
            .iter()
            .copied()
            // SAFETY: timed sleepers are alive and ours (we hold the lock).
            .filter(|t| unsafe { t.get() }.wake_at <= now)
            .collect();
        for t in due {
            // SAFETY: as above.
            self.make_runnable(unsafe { t.get() });
        }
    }
}

/// `cpu` has something to switch to (its run-queue lock is held, so the
/// flag cannot be cleared between the queueing and this store).
fn set_need_resched(cpu: usize) {
    NEED_RESCHED.of(cpu).store(true, Ordering::Release);
}

/// The time slice of whatever runs on this CPU is over (every tick: Linux
/// `scheduler_tick` -> `resched_curr`).
pub fn scheduler_tick() {
    NEED_RESCHED.this().store(true, Ordering::Release);
}

/// Whether this CPU should schedule at the next chance.
pub fn need_resched() -> bool {
    NEED_RESCHED.this().load(Ordering::Acquire)
}

/// Lock the run queue of `cpu`.
pub(super) fn rq(cpu: usize) -> crate::sync::IrqMutexGuard<'static, RunQueue> {
    RQ.of(cpu).lock()
}

/// The running task of this CPU, mutable: only its own CPU changes it,
/// under that CPU's run-queue lock.
pub(super) fn current_mut() -> &'static mut Task {
    let p = CURRENT.this().load(Ordering::Acquire) as *mut Task;
    // SAFETY: `current` points at a boxed task that is not reaped while it runs.
    unsafe { p.as_mut() }.expect("scheduler not started on this CPU")
}

/// The task just switched in (`me`, with RSP on its stack now) finishes
/// the switch away from `prev`, which `switch_to` handed over (Linux
/// `__switch_to` and `finish_task_switch`): it becomes `current`; if the
/// previous task ended, wake whoever joins it; then the previous stack is
/// no longer in use on this CPU, so it may be freed.
#[instrument_fn = "off"]
#[inline(always)]
fn finish_switch(me: &Task, prev: *const Task) {
    CURRENT.this().store(me as *const Task as u64, Ordering::Release);
    // A dynamic stack may grow from here on without the allocator (whose
    // lock it may come to hold): this CPU's reserve full first.
    if me.stack.dynamic() {
        crate::stacks::dynamic::refill();
    }
    // SAFETY: the task this CPU just left, which cannot be reaped while
    // `on_cpu` is set, which only the store below clears.
    if let Some(prev) = unsafe { prev.as_ref() } {
        if prev.state.get().ended() {
            super::wait::wake_joiner(prev);
        }
        prev.on_cpu.store(false, Ordering::Release);
    }
}

/// A new thread's first `finish_switch` (from `thread_main`), out of line so
/// that the thread's outermost frame stays small and holds nothing but its
/// entry (a trace through it shows no stale addresses).
#[inline(never)]
pub(super) fn finish_first_switch(me: &Task, prev: *const Task) {
    finish_switch(me, prev);
}

/// Switch to the next runnable task (or idle), putting the current one back
/// in the queue if it is still running.
#[instrument_fn = "off"]
pub fn schedule() {
    schedule_with(|_, _| true);
}

/// Under this CPU's run-queue lock, let `prepare` change the current task's
/// state (e.g. to Sleeping); it returns false to cancel the switch. Then
/// switch. Doing both under one lock is what makes sleeping free of lost
/// wake-ups. `prepare` must not take `TASKS` or a run-queue lock.
// Not traced, as Linux's `notrace __schedule`: the switch is the hottest
// path there is, and the tracer sees the functions around it.
// Never inlined: its frame is where a sleeping thread's trace starts
// (`bt PID`), whatever the optimizer decides for its callers.
#[instrument_fn = "off"]
#[inline(never)]
pub(super) fn schedule_with(prepare: impl FnOnce(&mut RunQueue, &mut Task) -> bool) {
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    let prev = current_mut();
    // Checked on every switch away (Linux `schedule_debug`).
    if !prev.stack.end_magic_ok() {
        super::exit::stack_end_corrupted(prev);
    }
    if in_atomic() {
        // Linux prints this and carries on; switching here would run
        // another thread inside this context, so tristack does not switch.
        SCHEDULES_WHILE_ATOMIC.fetch_add(1, Ordering::Relaxed);
        crate::println!(
            "BUG: scheduling while atomic: {}/{}/cpu {}; not switching",
            prev.name,
            prev.pid,
            this_cpu().id()
        );
        if were_enabled {
            interrupts::enable();
        }
        return;
    }
    let (prev_slot, next_rsp) = {
        let mut q = RQ.this().lock_irqs_off();
        if !prepare(&mut q, prev) {
            drop(q);
            if were_enabled {
                interrupts::enable();
            }
            return;
        }
        // Whatever made this CPU want to schedule is seen now (and not
        // before `prepare` agreed to switch: a cancelled switch leaves the
        // flag for the next chance); a task queued after this store sets
        // it again, under the same lock.
        NEED_RESCHED.this().store(false, Ordering::Release);
        if prev.state.get() == State::Running {
            prev.state.set(State::Runnable);
            if prev.pid != 0 {
                // Back in the queue, behind whoever is next: no need to
                // flag a reschedule, this is one.
                q.queue.push_back(prev);
            }
        }
        if prev.is_user() {
            crate::arch::stackleak::save(&prev.stackleak);
        }
        let next = q.switch_in_next();
        if core::ptr::eq(next, prev) {
            drop(q);
            if were_enabled {
                interrupts::enable();
            }
            return;
        }
        q.switches = q.switches.wrapping_add(1);
        (&mut prev.saved_rsp as *mut u64, next.saved_rsp)
        // The lock is released here; interrupts stay off until we run again.
    };
    let me = prev as *const Task;
    // SAFETY: interrupts are off; next's frame was saved by switch_to or
    // built by initial_frame on its live stack.
    let left = unsafe { switch::switch_to(prev_slot, next_rsp, me as u64) };
    // Running again, possibly much later: finish whichever switch brought us here.
    // SAFETY: our own task, alive while it runs.
    finish_switch(unsafe { &*me }, left as *const Task);
    if were_enabled {
        interrupts::enable();
    }
}

/// Give the CPU to the next runnable task.
#[instrument_fn = "off"]
pub fn yield_now() {
    schedule();
}

/// The way back from an interrupt to a thread: preempt it if a task was
/// queued here or its time slice (one tick) is over.
/// Not while the interrupted thread runs softirq handlers (ksoftirqd):
/// softirq context is not preemptible (Linux `SOFTIRQ_OFFSET` in
/// `preempt_count`), or another thread would run with `in_softirq` set.
pub fn preempt_on_irq_exit() {
    if need_resched() && percpu::ready() && CURRENT.this().load(Ordering::Acquire) != 0 && !in_atomic() {
        schedule();
    }
}

/// Hard-IRQ, softirq, NMI or #MC context, or a spin lock held: no switch
/// may happen here (Linux `in_atomic()`: `preempt_count` counts hard IRQs
/// too). The IRQ exit preempts only after `irq_count` is back at -1.
fn in_atomic() -> bool {
    let cpu = this_cpu();
    cpu.irq_count.load(Ordering::Relaxed) >= 0 || cpu.preempt_count() != 0
}

/// "BUG: scheduling while atomic" so far, on every CPU: a switch asked for
/// where none may happen (ktests check it stays put).
static SCHEDULES_WHILE_ATOMIC: AtomicU64 = AtomicU64::new(0);

pub fn schedules_while_atomic() -> u64 {
    SCHEDULES_WHILE_ATOMIC.load(Ordering::SeqCst)
}

/// Context switches so far, on every CPU.
pub fn switches() -> u64 {
    percpu::online_cpus().map(|c| rq(c).switches).sum()
}
