//! A thread's first entry to user mode (Linux `start_thread` in
//! `arch/x86/kernel/process_64.c`): its register frame, where that frame
//! lives, and the jump into the common exit path that returns through it.
//! That jump is the one way from below into the entry layer, and it goes
//! by the exit path's assembly label, as Linux's `ret_from_fork` does.

use core::mem::size_of;
use core::sync::atomic::Ordering;

use super::percpu::this_cpu;
use super::regs::Regs;

/// Where a frame from user mode belongs: the top of the running thread's stack.
pub fn user_frame_slot() -> *mut Regs {
    frame_slot_of(this_cpu().top_of_stack.load(Ordering::Relaxed))
}

/// Enter user mode for the first time (Linux `start_thread` +
/// `ret_from_fork` to user): `regs`, built by the caller at the top of its
/// own thread stack, becomes the frame the exit path returns through.
///
/// # Safety
/// `regs` is this thread's user frame slot, fully initialised with user
/// selectors, and everything below it on the stack may be abandoned.
pub unsafe fn enter_user(regs: *mut Regs) -> ! {
    assert_eq!(regs, user_frame_slot());
    ::x86_64::instructions::interrupts::disable();
    // SAFETY: per the contract: RSP := the frame, then the common exit path
    // (checks, poison, swapgs, iretq) as after any entry from user mode.
    unsafe { core::arch::asm!("mov rsp, {}", "jmp tristack_return_to_user", in(reg) regs, options(noreturn)) }
}

/// The user frame of a thread whose stack tops at `top` (what `enter_user`
/// expects to be given).
pub fn frame_slot_of(top: u64) -> *mut Regs {
    (top - size_of::<Regs>() as u64) as *mut Regs
}

/// Initial register frame of a new program: RIP at `entry`, RSP at
/// `user_rsp`, arguments in RDI and RSI, interrupts on, ring 3.
pub fn user_regs(entry: u64, user_rsp: u64, arg0: u64, arg1: u64) -> Regs {
    use crate::arch::gdt::{USER_CS, USER_DS};
    Regs {
        rip: entry,
        cs: u64::from(USER_CS),
        rflags: 0x202, // IF and the always-one bit
        rsp: user_rsp,
        ss: u64::from(USER_DS),
        rdi: arg0,
        rsi: arg1,
        ..Regs::default()
    }
}
