//! The generic entry and exit work (Linux `kernel/entry/common.c`): what
//! happens between the architecture's entry code and the subsystems, with
//! no register named. The x86 handlers (`arch::entry`) call these; these
//! call down into the scheduler, softirqs and system calls.
//!
//! A system call, followed one way down:
//! `tristack_entry_SYSCALL_64` (stub) → `arch::entry::syscall::do_syscall_64`
//! → `syscall_enter_from_user_mode` → `syscall` → `user::syscall::dispatch`
//! → `exit_to_user_mode_loop` → (the arch's checks) → `exit_to_user_mode`.

use crate::arch::regs::Regs;

/// Linux `enter_from_user_mode`: the CPU left user mode (a syscall, an
/// exception or an interrupt from ring 3).
#[inline]
pub fn enter_from_user_mode() {
    crate::sched::set_in_user(false);
}

/// Linux `syscall_enter_from_user_mode`: the entry work before the call.
#[inline]
pub fn syscall_enter_from_user_mode() {
    enter_from_user_mode();
}

/// The call itself (Linux `x64_sys_call`): syscall `nr` with the user's
/// registers; its return value.
#[inline]
pub fn syscall(nr: u64, regs: &mut Regs) -> i64 {
    crate::user::syscall::dispatch(nr, regs)
}

/// Work before any return to user mode (Linux `exit_to_user_mode_loop`):
/// a pending kill ends the thread here; a reschedule asked for meanwhile
/// (a task woken or created on this CPU, the time slice over) happens now,
/// not a timer tick later in user mode; and whatever the switch brought is
/// looked at again. Not for an NMI: it must not schedule while NMIs are
/// blocked until its IRET.
#[inline]
pub fn exit_to_user_mode_loop() {
    loop {
        if let Some(code) = crate::sched::pending_kill() {
            crate::sched::exit(code);
        }
        if !crate::sched::need_resched() {
            return;
        }
        crate::sched::schedule();
    }
}

/// Linux `exit_to_user_mode`: the last step before the return instruction
/// (interrupts off, the arch's checks done).
#[inline]
pub fn exit_to_user_mode() {
    crate::sched::set_in_user(true);
}

/// Linux `irq_exit`: at the outermost interrupt level (`depth` 0), run the
/// pending softirqs — here, on the IRQ stack, interrupts on
/// (`HAVE_IRQ_EXIT_ON_IRQ_STACK`).
#[inline]
pub fn irq_exit(depth: i64) {
    if depth == 0 {
        crate::softirq::run_on_irq_exit();
    }
}

/// Linux `irqentry_exit` to a kernel thread: the one place a thread is
/// preempted (back on its own stack, `irq_count` at -1).
#[inline]
pub fn irqentry_exit_to_kernel() {
    crate::sched::preempt_on_irq_exit();
}

/// The periodic tick (Linux `tick_periodic` + `update_process_times`): the
/// clock, the running thread's time slice, and the timer softirq, which
/// wakes sleepers whose time has come.
#[inline]
pub fn timer_tick(cpu: usize) {
    crate::time::tick(cpu);
    crate::softirq::raise(crate::softirq::Softirq::TIMER);
    crate::sched::scheduler_tick();
}
