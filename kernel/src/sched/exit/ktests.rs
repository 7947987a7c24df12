//! The exit and join paths under test: the oops kill waiting for a lock,
//! pinned stacks, atomic contexts, and joins racing the end of a thread.

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
    KTest { name: "join_races_the_end_on_another_cpu", run: join_races_the_end_on_another_cpu, oopses: false },
];

/// Spin `n` iterations, so the thread ends at a different moment each time.
fn end_after(n: u64) -> i64 {
    for i in 0..n {
        core::hint::black_box(i);
    }
    0
}

/// A join and the end of the thread it waits for, on two CPUs, at every
/// relative moment: the joiner registers itself in the thread and checks
/// its state under its own run-queue lock; the end wakes whoever is
/// registered (`wake_joiner`). One lost wake-up leaves a join asleep for
/// good and the boot times out. (With the joiner not registered, the
/// first few hundred joins hang.)
fn join_races_the_end_on_another_cpu() -> KResult {
    let me = percpu::this_cpu().id();
    let Some(other) = percpu::online_cpus().find(|&c| c != me) else {
        crate::println!("ktest: one CPU online; the join race needs two (skipped)");
        return Ok(());
    };
    for i in 0..2000u64 {
        let t =
            spawn_on("join-race", end_after, i % 97, Placement::Pinned(other)).map_err(|e| alloc::format!("{e:?}"))?;
        kcheck!(join(t) == Ok(Ended::Exited(0)), "join {i} of {t} failed");
    }
    Ok(())
}

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
        let pid = spawn_on("oops-victim", victim, 0, Placement::Pinned(other)).map_err(|e| alloc::format!("{e}"))?;
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
