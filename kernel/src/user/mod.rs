//! User mode (Linux `fs/binfmt_elf.c`, `kernel/fork.c`, `arch/x86/entry/common.c`):
//! - `abi`: syscall numbers and structures, shared with `ulib`;
//! - `elf`: the loader's checks (pure);
//! - `programs`: the embedded user programs;
//! - `process`: address space + program + thread; `run`;
//! - `syscall`: the dispatcher and the calls;
//! - `fault`: user faults end the process with Linux's messages;
//! - `ktests`: user memory access against a concurrent `munmap`.
//!
//! The entry and exit code itself (swapgs, the frame, sync_regs, SYSRET or
//! IRET, the hardenings) is architecture code: `arch/x86_64/syscall.rs`,
//! `usermode.rs` and `entry.rs`.
pub mod abi;
pub mod elf;
pub mod programs;
pub mod rng;

#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod ktests;
#[cfg(target_os = "none")]
pub mod process;
#[cfg(target_os = "none")]
pub mod syscall;

/// Work before any return to user mode (Linux `exit_to_user_mode_loop`):
/// a pending fatal signal ends the thread here, a pending reschedule
/// switches.
#[cfg(target_os = "none")]
pub fn exit_to_user_mode_work(_regs: &mut crate::arch::regs::Regs) {
    // Linux `exit_to_user_mode_loop`: a pending kill ends the thread; a
    // reschedule asked for meanwhile (a task woken or created on this CPU,
    // the time slice over) happens now, not a timer tick later in user
    // mode; and whatever the switch brought is looked at again.
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

#[cfg(test)]
mod tests {
    /// Every embedded program passes the loader's checks.
    #[test]
    fn every_embedded_program_is_a_loadable_user_image() {
        assert!(super::programs::PROGRAMS.len() >= 10);
        for (name, image) in super::programs::PROGRAMS {
            let plan = super::elf::plan(image).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(plan.entry >= crate::layout::USER_TEXT_BASE, "{name}");
        }
    }
}
