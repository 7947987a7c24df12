//! Threads and the scheduler: tasks on `THREAD_SIZE` stacks, per-CPU run
//! queues, `switch_to`, an idle task per CPU, preemption from the timer,
//! sleeping, wait queues, exit, join and reaping.
//!
//! One lock (`SCHED`, interrupts off while held) guards every task's state,
//! the run queues and the sleepers; a task's `saved_rsp` is written only by
//! `switch_to`, on the CPU switching that task out.
//!
//! SMP: a task is placed on one CPU when it is spawned (the least loaded,
//! or the one `--cpu` names) and stays there, so only that CPU pops its run
//! queue and switches to it. Waking a task of another CPU queues it there
//! and sends that CPU a reschedule IPI. `on_cpu` keeps a task's stack alive
//! until the CPU leaving it has really left (join waits for it).

mod task;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

pub use task::{Pid, State, Task};
use x86_64::instructions::interrupts;

use crate::arch::percpu::{self, this_cpu};
use crate::arch::switch;
use crate::mm::vmap::VmapError;
use crate::stacks::layout::MAX_CPUS;
use crate::stacks::thread;
use crate::stacks::usage::LowWater;
use crate::sync::IrqMutex;
use crate::{println, time};

/// A thread's body: gets the `arg` given to `spawn`, returns its exit code.
pub type Entry = fn(u64) -> i64;

/// The pid of the first thread (the shell), which must not die (Linux init).
pub const INIT_PID: Pid = 1;

struct Sched {
    tasks: BTreeMap<Pid, Box<Task>>,
    /// One idle task per CPU (all pid 0, as in Linux), outside `tasks`.
    idle: BTreeMap<usize, Box<Task>>,
    /// Per-CPU run queues of runnable pids.
    runq: Vec<VecDeque<Pid>>,
    next_pid: Pid,
    switches: u64,
}

static SCHED: IrqMutex<Sched> = IrqMutex::new(Sched {
    tasks: BTreeMap::new(),
    idle: BTreeMap::new(),
    runq: Vec::new(),
    next_pid: INIT_PID,
    switches: 0,
});

/// Free bytes of the deepest thread stack use seen at exit so far.
static LOWEST_STACK_FREE: LowWater = LowWater::new();
/// `oops=panic` on the command line (Linux `panic_on_oops`).
static PANIC_ON_OOPS: AtomicBool = AtomicBool::new(false);

pub fn set_panic_on_oops(on: bool) {
    PANIC_ON_OOPS.store(on, Ordering::SeqCst);
}

impl Sched {
    fn task_mut(&mut self, pid: Pid) -> Option<&mut Task> {
        self.tasks.get_mut(&pid).map(|b| &mut **b)
    }

    fn make_runnable(&mut self, pid: Pid) {
        let Some(t) = self.task_mut(pid) else { return };
        t.state = State::Runnable;
        t.wake_at = 0;
        t.waiting_on = 0;
        let cpu = t.cpu;
        self.runq[cpu].push_back(pid);
        if cpu != this_cpu().id() {
            crate::smp::send_reschedule(cpu);
        }
    }

    /// The online CPU with the fewest running or runnable tasks (ties: the
    /// lowest number) — where a new unpinned task goes.
    fn least_loaded_cpu(&self) -> usize {
        let mut load = [0usize; MAX_CPUS];
        for t in self.tasks.values().filter(|t| matches!(t.state, State::Running | State::Runnable)) {
            load[t.cpu] += 1;
        }
        percpu::online_cpus().min_by_key(|&c| (load[c], c)).unwrap_or(0)
    }

    /// Take the next runnable task of `cpu` off its queue (or its idle task),
    /// mark it running and make it this CPU's `current`.
    fn switch_in_next(&mut self, cpu: usize) -> &'static mut Task {
        let next: *mut Task = loop {
            match self.runq[cpu].pop_front() {
                Some(pid) => match self.task_mut(pid) {
                    Some(t) if t.state == State::Runnable => break t,
                    _ => continue, // reaped or queued twice: skip
                },
                None => break &mut **self.idle.get_mut(&cpu).expect("idle task"),
            }
        };
        // SAFETY: boxed tasks never move and are reaped only after they
        // stopped running; the caller holds the lock.
        let next = unsafe { &mut *next };
        next.state = State::Running;
        next.on_cpu.store(true, Ordering::Release);
        this_cpu().current.store(next as *const Task as u64, Ordering::Release);
        crate::arch::gdt::set_rsp0(next.stack.top());
        next
    }

    /// Wake every task sleeping on `key` (Linux `wake_up` on a hashed wait queue).
    fn wake_up(&mut self, key: u64) {
        let pids: Vec<Pid> =
            self.tasks.values().filter(|t| t.state == State::Sleeping && t.waiting_on == key).map(|t| t.pid).collect();
        for pid in pids {
            self.make_runnable(pid);
        }
    }
}

/// The task running on this CPU (None before the scheduler starts).
pub fn current() -> Option<&'static Task> {
    if !percpu::ready() {
        return None;
    }
    let p = this_cpu().current.load(Ordering::Acquire) as *const Task;
    // SAFETY: `current` points at a boxed task that is not reaped while it
    // runs (only zombies and dead tasks are reaped, and never the current one).
    unsafe { p.as_ref() }
}

fn current_mut() -> &'static mut Task {
    let p = this_cpu().current.load(Ordering::Acquire) as *mut Task;
    // SAFETY: as in `current`; mutable fields are only changed under SCHED.
    unsafe { p.as_mut() }.expect("scheduler not started on this CPU")
}

fn new_task(
    pid: Pid,
    name: &str,
    parent: Pid,
    entry: Entry,
    arg: u64,
    cpu: usize,
    pinned: bool,
) -> Result<Box<Task>, VmapError> {
    let stack = thread::alloc()?;
    // SAFETY: the stack was just allocated for this task and is mapped.
    let saved_rsp = unsafe { switch::initial_frame(stack.top(), entry as usize as u64, arg) };
    Ok(Box::new(Task::new(pid, name, parent, stack, saved_rsp, cpu, pinned)))
}

/// The task just switched in finishes the switch: the previous task's stack
/// is no longer in use on this CPU (Linux `finish_task_switch`).
fn finish_switch() {
    let prev = this_cpu().switching_from.swap(0, Ordering::AcqRel) as *const Task;
    // SAFETY: set just before the switch to a task that cannot be reaped
    // while `on_cpu` is set, which only this store clears.
    if let Some(prev) = unsafe { prev.as_ref() } {
        prev.on_cpu.store(false, Ordering::Release);
    }
}

/// Start scheduling on this CPU: an idle task, and `first` as pid 1 running
/// on a fresh thread stack. The caller's stack (the bootloader's, at boot) is
/// abandoned.
pub fn start(first_name: &str, first: Entry) -> ! {
    let cpu = this_cpu().id();
    let idle = new_task(0, &alloc::format!("swapper/{cpu}"), 0, idle_main, 0, cpu, true).expect("idle stack");
    let mut init = new_task(INIT_PID, first_name, 0, first, 0, cpu, false).expect("init stack");
    init.state = State::Running;
    init.on_cpu.store(true, Ordering::Relaxed);
    let rsp = init.saved_rsp;
    let top = init.stack.top();
    {
        let mut s = SCHED.lock();
        if s.runq.is_empty() {
            s.runq = (0..MAX_CPUS).map(|_| VecDeque::new()).collect();
        }
        s.idle.insert(cpu, idle);
        s.next_pid = INIT_PID + 1;
        let init_ptr = &*init as *const Task as u64;
        s.tasks.insert(INIT_PID, init);
        this_cpu().current.store(init_ptr, Ordering::Release);
        crate::arch::gdt::set_rsp0(top);
    }
    this_cpu().online.store(true, Ordering::Release);
    interrupts::disable();
    // SAFETY: `rsp` is init's initial frame; the boot stack is never used again.
    unsafe { switch::switch_to_abandon(rsp) }
}

/// First Rust code of every thread (called from `tristack_thread_start`).
pub extern "C" fn thread_main(entry: u64, arg: u64) -> ! {
    finish_switch();
    interrupts::enable();
    // SAFETY: `entry` was an `Entry` turned into an integer by `new_task`.
    let f: Entry = unsafe { core::mem::transmute::<usize, Entry>(entry as usize) };
    exit(f(arg))
}

fn idle_main(_: u64) -> i64 {
    loop {
        schedule();
        // Sleep until the next interrupt (the timer tick or a reschedule
        // IPI). No wake-up is lost: an IPI that comes before the `hlt` is
        // handled at once, and every IRQ exit to a thread reschedules.
        interrupts::enable_and_hlt();
    }
}

/// Make an idle task for AP `cpu`, before it starts; returns the top of its
/// stack, which the AP starts on (Linux: the idle task's stack is the AP's
/// boot stack).
pub fn create_idle(cpu: usize) -> Result<u64, VmapError> {
    let idle = new_task(0, &alloc::format!("swapper/{cpu}"), 0, idle_main, 0, cpu, true)?;
    let top = idle.stack.top();
    SCHED.lock().idle.insert(cpu, idle);
    Ok(top)
}

/// An AP, done with bring-up on its idle task's stack, becomes that idle
/// task and goes online.
pub fn run_idle(cpu: usize) -> ! {
    {
        let mut s = SCHED.lock();
        let idle = s.idle.get_mut(&cpu).expect("create_idle ran for this CPU");
        idle.state = State::Running;
        idle.on_cpu.store(true, Ordering::Relaxed);
        this_cpu().current.store(&**idle as *const Task as u64, Ordering::Release);
        crate::arch::gdt::set_rsp0(idle.stack.top());
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

/// Create a thread running `entry(arg)`; it is runnable at once.
pub fn spawn(name: &str, entry: Entry, arg: u64) -> Result<Pid, VmapError> {
    spawn_on(name, entry, arg, Placement::Any)
}

/// `spawn` with an explicit placement.
pub fn spawn_on(name: &str, entry: Entry, arg: u64, placement: Placement) -> Result<Pid, VmapError> {
    let parent = current();
    let placement = match (placement, parent) {
        (Placement::Any, Some(p)) if p.pinned && p.pid != 0 => Placement::Pinned(p.cpu),
        _ => placement,
    };
    let (pid, cpu) = {
        let s = SCHED.lock();
        let cpu = match placement {
            Placement::Pinned(c) => c,
            Placement::Any => s.least_loaded_cpu(),
        };
        (s.next_pid, cpu)
    };
    let pinned = matches!(placement, Placement::Pinned(_));
    let task = new_task(pid, name, parent.map_or(0, |t| t.pid), entry, arg, cpu, pinned)?;
    let mut s = SCHED.lock();
    // Another spawn may have taken `pid` meanwhile: take the next free one.
    let pid = s.next_pid.max(pid);
    s.next_pid = pid + 1;
    let mut task = task;
    task.pid = pid;
    s.tasks.insert(pid, task);
    s.make_runnable(pid);
    Ok(pid)
}

/// Switch to the next runnable task (or idle), putting the current one back
/// in the queue if it is still running.
pub fn schedule() {
    schedule_with(|_, _| true);
}

/// Under the scheduler lock, let `prepare` change the current task's state
/// (e.g. to Sleeping); it returns false to cancel the switch. Then switch.
/// Doing both under one lock is what makes sleeping free of lost wake-ups.
fn schedule_with(prepare: impl FnOnce(&mut Sched, &mut Task) -> bool) {
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    let prev = current_mut();
    // Checked on every switch away (Linux `schedule_debug`).
    if !prev.stack.end_magic_ok() {
        stack_end_corrupted(prev);
    }
    let (prev_slot, next_rsp) = {
        let mut s = SCHED.lock();
        if !prepare(&mut s, prev) {
            drop(s);
            if were_enabled {
                interrupts::enable();
            }
            return;
        }
        let cpu = this_cpu().id();
        if prev.state == State::Running {
            prev.state = State::Runnable;
            if prev.pid != 0 {
                s.runq[cpu].push_back(prev.pid);
            }
        }
        let next = s.switch_in_next(cpu);
        if core::ptr::eq(next, prev) {
            drop(s);
            if were_enabled {
                interrupts::enable();
            }
            return;
        }
        s.switches += 1;
        this_cpu().switching_from.store(prev as *const Task as u64, Ordering::Release);
        (&mut prev.saved_rsp as *mut u64, next.saved_rsp)
        // The lock is released here; interrupts stay off until we run again.
    };
    // SAFETY: interrupts are off; next's frame was saved by switch_to or
    // built by initial_frame on its live stack.
    unsafe { switch::switch_to(prev_slot, next_rsp) };
    // Running again, possibly much later: finish whichever switch brought us here.
    finish_switch();
    if were_enabled {
        interrupts::enable();
    }
}

/// Give the CPU to the next runnable task.
pub fn yield_now() {
    schedule();
}

/// Sleep at least `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let until = time::jiffies() + time::ms_to_ticks(ms);
    schedule_with(|_, cur| {
        cur.state = State::Sleeping;
        cur.wake_at = until;
        true
    });
}

/// Timer tick: wake sleepers whose time has come.
pub fn timer_tick(now: u64) {
    let Some(mut s) = SCHED.try_lock() else { return };
    if s.runq.is_empty() {
        return;
    }
    let due: Vec<Pid> = s
        .tasks
        .values()
        .filter(|t| t.state == State::Sleeping && t.wake_at != 0 && t.wake_at <= now)
        .map(|t| t.pid)
        .collect();
    for pid in due {
        s.make_runnable(pid);
    }
}

/// The way back from an interrupt to a thread: preempt it (time slice: one tick).
pub fn preempt_on_irq_exit() {
    if percpu::ready() && this_cpu().current.load(Ordering::Acquire) != 0 {
        schedule();
    }
}

/// Sleep until `cond` holds; it is checked under the scheduler lock, so a
/// `wake_up(key)` after the condition became true cannot be lost. `cond`
/// must not take the scheduler lock.
pub fn wait_until(key: u64, cond: impl Fn() -> bool) {
    loop {
        let mut blocked = false;
        schedule_with(|_, cur| {
            if cond() {
                return false;
            }
            cur.state = State::Sleeping;
            cur.waiting_on = key;
            blocked = true;
            true
        });
        if !blocked {
            return;
        }
    }
}

/// Wake every task waiting on `key`.
pub fn wake_up(key: u64) {
    SCHED.lock().wake_up(key);
}

/// Wait-queue key of "task `pid` changed state" (join waits on it).
fn exit_key(pid: Pid) -> u64 {
    0x7000_0000_0000 | u64::from(pid)
}

/// End the current thread: it becomes a zombie whose stack stays until
/// its parent reaps it with `join`.
pub fn exit(code: i64) -> ! {
    let cur = current_mut();
    if !cur.stack.end_magic_ok() {
        stack_end_corrupted(cur);
    }
    let free = cur.stack.not_used();
    if LOWEST_STACK_FREE.record(free) {
        println!("{} ({}) used greatest stack depth: {free} bytes left", cur.name, cur.pid);
    }
    schedule_with(|s, cur| {
        cur.state = State::Zombie;
        cur.exit_code = code;
        s.wake_up(exit_key(cur.pid));
        // Orphans go to init, which reaps them (Linux `forget_original_parent`).
        let me = cur.pid;
        for t in s.tasks.values_mut().filter(|t| t.parent == me) {
            t.parent = INIT_PID;
        }
        true
    });
    unreachable!("a zombie was scheduled");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    NoSuchTask,
    SelfJoin,
}

/// How a joined thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i64),
    /// Killed by an oops.
    Killed,
}

/// Wait for thread `pid` to end, then reap it (free its stack).
pub fn join(pid: Pid) -> Result<Ended, JoinError> {
    if current().is_some_and(|c| c.pid == pid) {
        return Err(JoinError::SelfJoin);
    }
    let ended = |s: &Sched| s.tasks.get(&pid).map(|t| matches!(t.state, State::Zombie | State::Dead));
    loop {
        let mut missing = false;
        let mut blocked = false;
        schedule_with(|s, cur| match ended(s) {
            None => {
                missing = true;
                false
            }
            Some(true) => false,
            Some(false) => {
                cur.state = State::Sleeping;
                cur.waiting_on = exit_key(pid);
                blocked = true;
                true
            }
        });
        if missing {
            return Err(JoinError::NoSuchTask);
        }
        if !blocked {
            break;
        }
    }
    // Its CPU may still be leaving its stack (Linux waits on `on_cpu` too).
    let task = loop {
        let mut s = SCHED.lock();
        if !s.tasks.get(&pid).expect("ended task is still there").on_cpu.load(Ordering::Acquire) {
            break s.tasks.remove(&pid).expect("checked");
        }
        drop(s);
        core::hint::spin_loop();
    };
    let how = if task.state == State::Dead { Ended::Killed } else { Ended::Exited(task.exit_code) };
    thread::free(task.stack);
    Ok(how)
}

/// Reap every ended child of the current task (the shell does this before
/// each command, as init reaps orphans); returns how many.
pub fn reap_children() -> usize {
    let me = current().map_or(0, |t| t.pid);
    let ended: Vec<Pid> = SCHED
        .lock()
        .tasks
        .values()
        .filter(|t| t.parent == me && matches!(t.state, State::Zombie | State::Dead))
        .map(|t| t.pid)
        .collect();
    ended.iter().filter(|&&pid| join(pid).is_ok()).count()
}

/// A snapshot of one task for `ps` and `stacks`.
pub struct TaskInfo {
    pub pid: Pid,
    pub name: String,
    pub parent: Pid,
    pub state: State,
    pub cpu: usize,
    /// Where a task that is not running will resume.
    pub saved_pc: Option<u64>,
    pub stack: thread::ThreadStack,
    pub stack_free: u64,
}

pub fn snapshot() -> Vec<TaskInfo> {
    let s = SCHED.lock();
    let info = |t: &Task| TaskInfo {
        pid: t.pid,
        name: t.name.clone(),
        parent: t.parent,
        state: t.state,
        cpu: t.cpu,
        // SAFETY: a task that is not running has a switch frame at saved_rsp.
        saved_pc: (t.state != State::Running && !t.on_cpu.load(Ordering::Acquire))
            .then(|| unsafe { switch::saved_pc(t.saved_rsp) }),
        stack: t.stack,
        stack_free: t.stack.not_used(),
    };
    s.idle.values().map(|t| info(t)).chain(s.tasks.values().map(|t| info(t))).collect()
}

/// A task that is not running: its name, saved RSP and the address of the
/// RBP slot in its switch frame (a frame record for the unwinder).
pub fn saved_context(pid: Pid) -> Option<(String, u64, u64)> {
    let s = SCHED.lock();
    let t = s.tasks.get(&pid).or_else(|| (pid == 0).then(|| s.idle.get(&this_cpu().id())).flatten())?;
    (t.state != State::Running && !t.on_cpu.load(Ordering::Acquire)).then(|| {
        let rbp_slot = t.saved_rsp + 8 * (switch::SWITCH_FRAME_WORDS as u64 - 1);
        (t.name.clone(), t.saved_rsp, rbp_slot)
    })
}

/// Context switches so far.
pub fn switches() -> u64 {
    SCHED.lock().switches
}

/// The end magic of `task`'s stack is gone: say so, then BUG (ud2 → #UD →
/// oops), which kills the task like any other oops.
fn stack_end_corrupted(task: &Task) -> ! {
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

/// What the oops path does once it has printed: kill the current thread and
/// carry on, or return the reason the whole kernel must panic.
pub fn kill_current_after_oops() -> &'static str {
    if PANIC_ON_OOPS.load(Ordering::SeqCst) {
        return "Fatal exception";
    }
    let Some(cur) = current() else { return "Fatal exception" };
    if this_cpu().irq_count.load(Ordering::SeqCst) >= 0 {
        return "Fatal exception in interrupt";
    }
    match cur.pid {
        0 => return "Attempted to kill the idle task!",
        INIT_PID => return "Attempted to kill init! exitcode=0x0000000b",
        _ => {}
    }
    let Some(mut s) = SCHED.try_lock() else { return "Fatal exception (scheduler lock held)" };
    let cpu = this_cpu().id();
    let cur = current_mut();
    cur.state = State::Dead;
    cur.exit_code = -11; // as if by SIGSEGV
    s.wake_up(exit_key(cur.pid));
    let me = cur.pid;
    for t in s.tasks.values_mut().filter(|t| t.parent == me) {
        t.parent = INIT_PID;
    }
    let next = s.switch_in_next(cpu);
    s.switches += 1;
    this_cpu().switching_from.store(cur as *const Task as u64, Ordering::Release);
    println!(
        "oops: killed {} ({}); its stack {:016x}..{:016x} stays until it is reaped",
        cur.name,
        cur.pid,
        cur.stack.bottom,
        cur.stack.top() - 1
    );
    let rsp = next.saved_rsp;
    drop(s);
    interrupts::disable();
    crate::debug::oops::recovered();
    // SAFETY: the dying task's stack (or the #DF stack we are on) is
    // abandoned; next's frame is valid.
    unsafe { switch::switch_to_abandon(rsp) }
}
