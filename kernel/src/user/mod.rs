//! User mode (Linux `fs/binfmt_elf.c`, `kernel/fork.c`):
//! - `abi`: syscall numbers and structures, shared with `ulib`;
//! - `elf`: the loader's checks (pure);
//! - `programs`: the embedded user programs;
//! - `process`: address space + program + thread; `run`;
//! - `syscall`: the dispatcher and the calls;
//! - `fault`: user faults end the process with Linux's messages;
//! - `ktests`: user memory access against a concurrent `munmap`.
//!
//! The way in and out is the entry layers': the generic work (the
//! exit-to-user loop: a pending kill, `need_resched`) in `crate::entry`,
//! and the architecture's (swapgs, the frame, `sync_regs`, SYSRET or IRET,
//! the hardenings) in `arch/x86_64/entry/`.
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
