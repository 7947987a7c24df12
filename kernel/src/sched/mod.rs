//! Threads and the scheduler: tasks on `THREAD_SIZE` stacks, an idle task
//! per CPU, preemption from the timer.
//!
//! - `task`: the task and its state;
//! - `runqueue`: per-CPU run queues, each with its own lock, and `switch_to`
//!   around them (`schedule`), plus the task list and the lock order;
//! - `wait`: sleeping and waking, with typed wait keys;
//! - `exit`: exit, the oops kill, join and reaping;
//! - `snapshot`: copies of the tasks for `ps`, `stacks` and `bt PID`.
//!
//! SMP: a task is placed on one CPU when it is spawned (the least loaded,
//! or the one `--cpu` names) and stays there, so only that CPU pops its run
//! queue and switches to it. Waking a task of another CPU queues it there
//! and sends that CPU a reschedule IPI. `on_cpu` keeps a task's stack alive
//! until the CPU leaving it has really left (join waits for it).

mod ended;
mod exit;
mod runqueue;
mod signal;
mod snapshot;
mod task;
pub mod task_stack;
mod wait;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

pub use ended::{describe, Ended, JoinError};
pub use exit::{exit, join, kill_current, ktests, reap_children, KillError};
pub use runqueue::{
    need_resched, preempt_on_irq_exit, schedule, scheduler_tick, schedules_while_atomic, switches, yield_now,
};
use runqueue::{rq, TASKS};
pub use signal::{
    kill, kill_other_threads, kill_with, pending_kill, KillPidError, KILLED_BY_SIGINT, KILLED_BY_SIGKILL,
};
pub use snapshot::{saved_context, snapshot, SavedContext, TaskInfo};
pub use task::{Comm, Pid, State, Task};
pub use wait::{sleep_ms, timer_softirq, WaitQueue};
use x86_64::instructions::interrupts;

use crate::arch::percpu::{self, this_cpu};
use crate::arch::switch;
use crate::layout::MAX_CPUS;
use crate::mm::address_space::AddressSpace;
use crate::mm::vmap::VmapError;
use crate::stacks::thread;

/// `current()` on a path that runs only once this CPU schedules (entries
/// from and exits to user mode, every syscall): without `current`'s check
/// that the per-CPU areas exist yet, which costs each use three
/// instructions on the hottest path there is.
#[inline]
pub fn current_scheduled() -> Option<&'static Task> {
    let p = runqueue::CURRENT.this().load(Ordering::Acquire) as *const Task;
    // SAFETY: as in `current`; this CPU's per-CPU area exists (it schedules).
    unsafe { p.as_ref() }
}

/// A thread's body: gets the `arg` given to `spawn`, returns its exit code.
pub type Entry = fn(u64) -> i64;

/// The pid of the first thread (the shell), which must not die (Linux init).
pub const INIT_PID: Pid = 1;

/// The task running on this CPU (None before the scheduler starts).
pub fn current() -> Option<&'static Task> {
    if !percpu::ready() {
        return None;
    }
    let p = runqueue::CURRENT.this().load(Ordering::Acquire) as *const Task;
    // SAFETY: `current` points at a boxed task that is not reaped while it
    // runs (only ended tasks are reaped, and never the current one).
    unsafe { p.as_ref() }
}

/// A task (pid 0 until its caller numbers it) on a fresh stack.
#[allow(clippy::too_many_arguments, reason = "one private constructor, each argument a fact of the new task")]
fn new_task(
    name: &str,
    parent: Pid,
    entry: Entry,
    arg: u64,
    cpu: usize,
    pinned: bool,
    mm: Option<Arc<AddressSpace>>,
    stack: StackRequest,
) -> Result<Box<Task>, VmapError> {
    let stack = if stack.dynamic { thread::alloc_dynamic()? } else { thread::alloc_sized(stack.size, stack.limit)? };
    // A user thread's stack keeps its top REGS_SIZE bytes for the frame of
    // every entry from user mode (Linux `task_pt_regs`); the thread starts
    // below it.
    let reserved = if mm.is_some() { crate::arch::regs::REGS_SIZE as u64 } else { 0 };
    // What the new thread runs first (one store; the switch code is below
    // the scheduler and is told, not asking).
    switch::set_thread_main(thread_main);
    let top = stack.top() - reserved;
    let mut task = Box::new(Task::new(0, name, parent, stack, 0, cpu, pinned));
    let me = &*task as *const Task as u64;
    // SAFETY: the stack was just allocated for this task and is mapped; the
    // box does not move with the task.
    task.saved_rsp = unsafe { switch::initial_frame(top, entry as usize as u64, arg, me) };
    task.mm = mm;
    Ok(task)
}

/// The stack a new thread gets: its size (one of `THREAD_STACK_SIZES`) and
/// an optional stack limit inside a `THREAD_SIZE` stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRequest {
    pub size: u64,
    pub limit: Option<u64>,
    /// Grows on demand (`stacks::dynamic`; `THREAD_SIZE`, no limit).
    pub dynamic: bool,
}

impl StackRequest {
    pub const DEFAULT: StackRequest = StackRequest { size: crate::layout::THREAD_SIZE, limit: None, dynamic: false };

    /// What a thread spawned now gets unless told otherwise: its parent's
    /// `child_stack_size`, and the boot-time default limit (on a
    /// `THREAD_SIZE` stack only), or else a dynamic stack if they are the
    /// default (`dynamic-stacks on`).
    pub fn inherited() -> StackRequest {
        let size = current().map_or(crate::layout::THREAD_SIZE, |t| t.child_stack_size.load(Ordering::Relaxed));
        let limit = thread::default_limit().filter(|_| size == crate::layout::THREAD_SIZE);
        let dynamic = size == crate::layout::THREAD_SIZE && limit.is_none() && crate::stacks::dynamic::default_on();
        StackRequest { size, limit, dynamic }
    }
}

/// Start scheduling on the boot CPU: an idle task, and `first` as pid 1
/// running on a fresh thread stack. The caller's stack (the bootloader's)
/// is abandoned.
pub fn start(first_name: &str, first: Entry) -> ! {
    let cpu = this_cpu().id();
    let idle = new_task(&alloc::format!("swapper/{cpu}"), 0, idle_main, 0, cpu, true, None, StackRequest::DEFAULT)
        .expect("idle stack");
    let mut init = new_task(first_name, 0, first, 0, cpu, false, None, StackRequest::DEFAULT).expect("init stack");
    init.pid = INIT_PID;
    init.state.set(State::Running);
    init.on_cpu.store(true, Ordering::Relaxed);
    let rsp = init.saved_rsp;
    let top = init.stack.top();
    {
        let mut tasks = TASKS.lock();
        tasks.next_pid = INIT_PID + 1;
        let init_ptr = &*init as *const Task as u64;
        // Its stack, for stack erasing (the box does not move with it).
        crate::arch::stackleak::start(&init.stackleak);
        tasks.tasks.insert(INIT_PID, init);
        rq(cpu).idle = Some(idle);
        runqueue::CURRENT.this().store(init_ptr, Ordering::Release);
        crate::arch::gdt::set_top_of_stack(top);
    }
    this_cpu().online.store(true, Ordering::Release);
    interrupts::disable();
    // SAFETY: `rsp` is init's initial frame; the boot stack is never used
    // again, and it was no task's (0).
    unsafe { switch::switch_to_abandon(rsp, 0) }
}

/// First Rust code of every thread (called from `tristack_thread_start`):
/// `me` is this thread's task, `prev` the task the CPU left (0: none).
pub extern "C" fn thread_main(entry: u64, arg: u64, me: u64, prev: u64) -> ! {
    // SAFETY: `me` is the boxed task whose initial frame `new_task` built,
    // alive while it runs; `prev` is what `switch_to` handed over.
    runqueue::finish_first_switch(unsafe { &*(me as *const Task) }, prev as *const Task);
    interrupts::enable();
    // SAFETY: `entry` was an `Entry` turned into an integer by `new_task`.
    let f: Entry = unsafe { core::mem::transmute::<usize, Entry>(entry as usize) };
    exit(f(arg))
}

fn idle_main(_: u64) -> i64 {
    loop {
        schedule();
        // Sleep until the next interrupt (the timer tick or a reschedule
        // IPI) unless something was queued meanwhile: a wake-up done while
        // this idle task ran (the exit of the task it replaced wakes the
        // joiner) would otherwise wait for the next tick. `sti; hlt` is
        // atomic: an IRQ that queues a task after the check ends the `hlt`,
        // and its exit schedules.
        interrupts::disable();
        if need_resched() {
            interrupts::enable();
        } else {
            interrupts::enable_and_hlt();
        }
    }
}

/// Make an idle task for AP `cpu`, before it starts; returns the top of its
/// stack, which the AP starts on (Linux: the idle task's stack is the AP's
/// boot stack).
pub fn create_idle(cpu: usize) -> Result<u64, VmapError> {
    let idle = new_task(&alloc::format!("swapper/{cpu}"), 0, idle_main, 0, cpu, true, None, StackRequest::DEFAULT)?;
    let top = idle.stack.top();
    rq(cpu).idle = Some(idle);
    Ok(top)
}

/// An AP, done with bring-up on its idle task's stack, becomes that idle
/// task and goes online.
pub fn run_idle(cpu: usize) -> ! {
    {
        let mut q = rq(cpu);
        let idle = q.idle.as_mut().expect("create_idle ran for this CPU");
        idle.state.set(State::Running);
        idle.on_cpu.store(true, Ordering::Relaxed);
        runqueue::CURRENT.this().store(&**idle as *const Task as u64, Ordering::Release);
        crate::arch::gdt::set_top_of_stack(idle.stack.top());
        crate::arch::stackleak::start(&idle.stackleak);
    }
    this_cpu().online.store(true, Ordering::Release);
    idle_main(0);
    unreachable!("idle returned")
}

/// Where a thread runs: `--cpu` pins it; a pinned parent's children stay on
/// the parent's CPU (Linux children inherit `cpus_allowed`); otherwise the
/// least loaded online CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Any,
    Pinned(usize),
}

/// The online CPU with the fewest running or runnable tasks (ties: the
/// lowest number) — where a new unpinned task goes.
fn least_loaded_cpu(tasks: &runqueue::TaskList) -> usize {
    let mut load = [0usize; MAX_CPUS];
    for t in tasks.tasks.values().filter(|t| matches!(t.state.get(), State::Running | State::Runnable)) {
        load[t.cpu] += 1;
    }
    percpu::online_cpus().min_by_key(|&c| (load[c], c)).unwrap_or(0)
}

/// Create a thread running `entry(arg)`; it is runnable at once.
pub fn spawn(name: &str, entry: Entry, arg: u64) -> Result<Pid, VmapError> {
    spawn_on(name, entry, arg, Placement::Any)
}

/// `spawn` with an explicit placement.
pub fn spawn_on(name: &str, entry: Entry, arg: u64, placement: Placement) -> Result<Pid, VmapError> {
    kernel_thread(spawn_task(name, entry, arg, placement, None, StackRequest::inherited()))
}

/// `spawn_on` with the stack given (`spawn --stack-size`, `--stack-limit`).
pub fn spawn_with_stack(
    name: &str,
    entry: Entry,
    arg: u64,
    placement: Placement,
    stack: StackRequest,
) -> Result<Pid, VmapError> {
    kernel_thread(spawn_task(name, entry, arg, placement, None, stack))
}

/// A thread of a user process: runs `entry(arg)` in the kernel on its own
/// thread stack, with `mm` loaded, until `entry` enters user mode.
/// `tgid`: the process's thread group, or None for its first thread (whose
/// pid becomes the group's id).
pub fn spawn_user(
    name: &str,
    mm: Arc<AddressSpace>,
    tgid: Option<Pid>,
    entry: Entry,
    arg: u64,
    placement: Placement,
) -> Result<Pid, SpawnError> {
    spawn_task(name, entry, arg, placement, Some((mm, tgid)), StackRequest::inherited())
}

/// Why a thread was not created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// No kernel stack (no memory, or every stack slot taken).
    Stack(VmapError),
    /// A new thread of a process whose creating thread has a fatal signal
    /// pending: the process is being killed (Linux `copy_process` checks
    /// `fatal_signal_pending` under the same lock that makes the new thread
    /// visible, so a kill of the group either sees it or stops it).
    KillPending,
}

/// A kernel thread is never refused for a pending kill (only user threads
/// are killed).
fn kernel_thread(r: Result<Pid, SpawnError>) -> Result<Pid, VmapError> {
    r.map_err(|e| match e {
        SpawnError::Stack(e) => e,
        SpawnError::KillPending => unreachable!("a kernel thread refused for a pending kill"),
    })
}

fn spawn_task(
    name: &str,
    entry: Entry,
    arg: u64,
    placement: Placement,
    user: Option<(Arc<AddressSpace>, Option<Pid>)>,
    stack: StackRequest,
) -> Result<Pid, SpawnError> {
    let (mm, tgid) = match user {
        Some((mm, tgid)) => (Some(mm), Some(tgid)),
        None => (None, None),
    };
    let parent = current();
    let placement = match (placement, parent) {
        (Placement::Any, Some(p)) if p.pinned && p.pid != 0 => Placement::Pinned(p.cpu),
        _ => placement,
    };
    let cpu = match placement {
        Placement::Pinned(c) => c,
        Placement::Any => least_loaded_cpu(&TASKS.lock()),
    };
    let pinned = matches!(placement, Placement::Pinned(_));
    // The stack is allocated outside every scheduler lock; the pid is set below.
    let mut task =
        new_task(name, parent.map_or(0, |t| t.pid), entry, arg, cpu, pinned, mm, stack).map_err(SpawnError::Stack)?;
    if let Some(p) = parent {
        task.child_stack_size.store(p.child_stack_size.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    let mut tasks = TASKS.lock();
    // Under the lock `kill` and `kill_other_threads` mark the group with:
    // either the kill saw this thread's creator (refuse), or it will see
    // the new thread.
    let joins_group = matches!(tgid, Some(Some(_)));
    if joins_group && parent.is_some_and(|p| p.kill_code.load(Ordering::SeqCst) != task::NO_KILL) {
        drop(tasks);
        thread::free(task.stack);
        return Err(SpawnError::KillPending);
    }
    let pid = tasks.next_pid;
    tasks.next_pid = pid + 1;
    task.pid = pid;
    if let Some(tgid) = tgid {
        task.tgid = tgid.unwrap_or(pid);
    }
    let task: &mut Task = tasks.tasks.entry(pid).or_insert(task);
    rq(cpu).enqueue_new(task);
    drop(tasks);
    if cpu != this_cpu().id() {
        crate::smp::send_reschedule(cpu);
    }
    Ok(pid)
}

/// [bottom, top) of the running thread's stack (None before the scheduler runs).
pub fn current_stack_range() -> Option<(u64, u64)> {
    current().map(|t| (t.stack.bottom, t.stack.top()))
}

/// Set the stack size the children of task `pid` (None: the running
/// task) get; one of `THREAD_STACK_SIZES`.
pub fn set_child_stack_size(pid: Option<Pid>, size: u64) -> Result<(), KillPidError> {
    match pid {
        None => current().ok_or(KillPidError::NoSuchTask)?.child_stack_size.store(size, Ordering::Relaxed),
        Some(pid) => {
            let tasks = TASKS.lock();
            let t = tasks.tasks.get(&pid).ok_or(KillPidError::NoSuchTask)?;
            t.child_stack_size.store(size, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Set the running thread's user breakpoint (0: none) and apply it now.
pub fn set_user_watch(addr: u64) {
    if let Some(t) = current() {
        let were = interrupts::are_enabled();
        interrupts::disable();
        t.user_watch.store(addr, Ordering::Relaxed);
        crate::arch::debug::switch_user_watch(addr);
        if were {
            interrupts::enable();
        }
    }
}

/// Mark the running thread as in user mode or not (the entry and exit code).
pub fn set_in_user(on: bool) {
    if let Some(t) = current_scheduled() {
        t.in_user.store(on, Ordering::Relaxed);
    }
}
