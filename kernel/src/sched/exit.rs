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

/// Free bytes of the deepest thread stack use seen at exit so far.
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
    let free = cur.stack_not_used();
    if LOWEST_STACK_FREE.record(free) {
        println!("{} ({}) used greatest stack depth: {free} bytes left", cur.name, cur.pid);
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
    thread::free(task.stack);
    Ok(how)
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

pub mod ktests {
    use core::sync::atomic::{AtomicBool, Ordering};

    use x86_64::instructions::interrupts;

    use super::super::runqueue::{rq, TASKS};
    use super::{join, KILL_LOCK_WAITS};
    use crate::arch::percpu;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::sched::Ended;
    use crate::sched::{spawn_on, Placement};
    use crate::time::spin_until;

    pub static KTESTS: &[KTest] = &[
        KTest {
            name: "oops_waits_for_a_sched_lock_held_elsewhere",
            run: oops_waits_for_a_sched_lock_held_elsewhere,
            oopses: true,
        },
        KTest { name: "a_pinned_stack_is_not_reaped", run: a_pinned_stack_is_not_reaped, oopses: false },
        KTest { name: "no_switch_from_hard_irq_context", run: no_switch_from_hard_irq_context, oopses: false },
        KTest { name: "current_is_per_cpu", run: current_is_per_cpu_and_owns_rsp, oopses: false },
    ];

    /// `current` comes from the per-CPU area, and we run on its stack.
    fn current_is_per_cpu_and_owns_rsp() -> KResult {
        let cur = crate::sched::current().ok_or("no current task")?;
        let rsp = crate::arch::cpu::stack_pointer();
        kcheck!(cur.pid == crate::sched::INIT_PID, "ktests run in init, current is pid {}", cur.pid);
        kcheck!((cur.stack.bottom..cur.stack.top()).contains(&rsp), "RSP {rsp:#x} not on current's stack");
        Ok(())
    }

    /// A thread ran while its CPU was inside an interrupt handler.
    static RAN_INSIDE_IRQ: AtomicBool = AtomicBool::new(false);

    /// In a function-call IPI (hard-IRQ context, on that CPU's IRQ stack):
    /// ask for a switch with another task runnable there.
    fn yield_in_irq(_: u64) {
        crate::sched::yield_now();
    }

    fn spin_a_while(_: u64) -> i64 {
        let until = crate::time::jiffies() + 2;
        while crate::time::jiffies() < until {
            if percpu::this_cpu().irq_count.load(Ordering::SeqCst) >= 0 {
                RAN_INSIDE_IRQ.store(true, Ordering::SeqCst);
            }
            core::hint::spin_loop();
        }
        0
    }

    /// Hard-IRQ context is atomic (Linux counts it in `preempt_count`): a
    /// switch asked for from an interrupt handler is refused with "BUG:
    /// scheduling while atomic", not carried out on the IRQ stack.
    fn no_switch_from_hard_irq_context() -> KResult {
        let me = percpu::this_cpu().id();
        let Some(other) = percpu::online_cpus().find(|&c| c != me) else { return Ok(()) };
        // Two, so a switch would have somewhere to go.
        let spawn =
            || spawn_on("ktest-busy", spin_a_while, 0, Placement::Pinned(other)).map_err(|e| alloc::format!("{e:?}"));
        let busy = [spawn()?, spawn()?];
        let refused = crate::sched::schedules_while_atomic();
        RAN_INSIDE_IRQ.store(false, Ordering::SeqCst);
        crate::smp::call_on(core::iter::once(other), yield_in_irq, 0);
        let refused = crate::sched::schedules_while_atomic() - refused;
        for pid in busy {
            let _ = join(pid);
        }
        kcheck!(!RAN_INSIDE_IRQ.load(Ordering::SeqCst), "a thread ran inside an interrupt handler");
        kcheck!(refused == 1, "{refused} refusals, expected exactly 1");
        Ok(())
    }

    /// Rounds in a row that must all pass.
    const ROUNDS: usize = 20;
    static READY: AtomicBool = AtomicBool::new(false);
    static HOLDING: AtomicBool = AtomicBool::new(false);

    /// Waits, interrupts off (so its own tick cannot need the held lock),
    /// until the other CPU holds the lock, then oopses.
    fn victim(_: u64) -> i64 {
        interrupts::disable();
        READY.store(true, Ordering::SeqCst);
        while !HOLDING.load(Ordering::SeqCst) {
            core::hint::spin_loop();
        }
        // SAFETY: deliberately fatal: #UD, oops, this thread is killed.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        0
    }

    /// The race once seen under load: an oops on one CPU while another
    /// holds a scheduler lock. The oops must wait for it, then kill only
    /// the thread. Alternates the victim CPU's run-queue lock and the task
    /// list lock, ROUNDS times.
    fn oops_waits_for_a_sched_lock_held_elsewhere() -> KResult {
        let me = percpu::current_cpu_id();
        let Some(other) = percpu::online_cpus().find(|&c| c != me) else {
            crate::println!("ktest: one CPU online; the oops-vs-lock race needs two (skipped)");
            return Ok(());
        };
        for round in 0..ROUNDS {
            READY.store(false, Ordering::SeqCst);
            HOLDING.store(false, Ordering::SeqCst);
            let pid =
                spawn_on("oops-victim", victim, 0, Placement::Pinned(other)).map_err(|e| alloc::format!("{e}"))?;
            kcheck!(spin_until(5_000, || READY.load(Ordering::SeqCst)), "round {round}: victim never ran");
            let waits = KILL_LOCK_WAITS.load(Ordering::SeqCst);
            let forced = {
                let _held = (round % 2 == 0).then(|| rq(other));
                let _tasks = (round % 2 == 1).then(|| TASKS.lock());
                HOLDING.store(true, Ordering::SeqCst);
                // Hold until the oops path has found the lock taken.
                spin_until(5_000, || KILL_LOCK_WAITS.load(Ordering::SeqCst) != waits)
            };
            let ended = join(pid);
            let what = if round % 2 == 0 { "run-queue" } else { "task list" };
            kcheck!(forced, "round {round}: the oops never waited for the {what} lock");
            kcheck!(ended == Ok(Ended::Killed), "round {round} ({what} lock): victim ended {ended:?}");
        }
        Ok(())
    }

    static GO: AtomicBool = AtomicBool::new(false);
    static JOINED: AtomicBool = AtomicBool::new(false);
    static SLEEPER: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

    fn sleeper(_: u64) -> i64 {
        while !GO.load(Ordering::SeqCst) {
            crate::sched::sleep_ms(1);
        }
        0
    }

    fn joiner(_: u64) -> i64 {
        let ended = join(SLEEPER.load(Ordering::SeqCst));
        JOINED.store(true, Ordering::SeqCst);
        i64::from(ended != Ok(Ended::Exited(0)))
    }

    /// `bt PID` pins the stack it walks (Linux `try_get_task_stack`): while
    /// a reader holds a task's saved context, the task may run and exit,
    /// but its joiner must not reap it (and free its stack) until the
    /// reader lets go.
    fn a_pinned_stack_is_not_reaped() -> KResult {
        GO.store(false, Ordering::SeqCst);
        JOINED.store(false, Ordering::SeqCst);
        let fail = |e| alloc::format!("{e}");
        let t = crate::sched::spawn("pin-sleeper", sleeper, 0).map_err(fail)?;
        SLEEPER.store(t, Ordering::SeqCst);
        let mut ctx = None;
        kcheck!(
            spin_until(5_000, || {
                ctx = crate::sched::saved_context(t);
                ctx.is_some()
            }),
            "the sleeper never slept"
        );
        let j = crate::sched::spawn("pin-joiner", joiner, 0).map_err(fail)?;
        GO.store(true, Ordering::SeqCst);
        // Give the sleeper time to exit and the joiner time to try.
        crate::sched::sleep_ms(50);
        let ended = crate::sched::snapshot().iter().find(|i| i.pid == t).map(|i| i.state);
        let joined_while_pinned = JOINED.load(Ordering::SeqCst);
        drop(ctx);
        let joiner_ok = join(j);
        kcheck!(ended == Some(crate::sched::State::Zombie), "the sleeper did not exit while pinned: {ended:?}");
        kcheck!(!joined_while_pinned, "the sleeper was reaped while its stack was pinned");
        kcheck!(joiner_ok == Ok(Ended::Exited(0)), "joiner ended {joiner_ok:?}");
        kcheck!(JOINED.load(Ordering::SeqCst), "the joiner never reaped the sleeper");
        Ok(())
    }
}
