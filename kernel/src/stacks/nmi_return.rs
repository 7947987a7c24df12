//! Returning into NMI context: the one decision every exception exit to
//! kernel mode makes (pure, host-tested; the entry code asks it through
//! `arch::nmi::returns_into_nmi`).
//!
//! While an NMI is handled the CPU blocks further NMIs until the next
//! `iretq`. An exception taken inside NMI context (an #MC, a #DB, a fault)
//! that returned with `iretq` would unblock NMIs while the NMI stack is
//! still live, and the next NMI would start again at the same IST top,
//! over the live frame. So such an exception returns without IRET. NMI
//! context is: the NMI's Rust handler running (`nmi_depth > 0`), or kernel
//! code whose stack pointer lies on this CPU's NMI stack (the entry and
//! exit stubs around the handler, `sync_regs` moving a frame off it).
//!
//! The stack-pointer test alone is the bug the entry sweep found: in the
//! first three instructions of the SYSCALL entry (before RSP is switched)
//! and in the last two of its SYSRET exit (after RSP is restored), the
//! kernel runs in ring 0 on the *user's* RSP. A user program that points
//! RSP at its CPU's NMI stack and loops on `syscall` made every NMI landing
//! there "return into NMI context": the IRET-less return wrote the user's
//! registers below that RSP, into the NMI stack, left NMIs blocked, and
//! after a few dozen such NMIs walked into the guard page (a panic).
//! Linux's `asm_exc_nmi` makes the same RSP test for nested NMIs and then
//! rejects a user-controlled RSP by DF (SYSCALL masks DF; Linux sets DF
//! before it leaves NMI context). tristack's NMI-stack code runs with DF
//! clear, so it states the same exclusion by RIP, as Linux decides its
//! `repeat_nmi` window and `.Lerror_bad_iret` by RIP: an RSP interrupted
//! at one of the instructions that run on the user's RSP is not trusted.

use core::ops::{Range, RangeInclusive};

/// What the exit knows about the interrupted context.
#[derive(Clone, Copy, Debug)]
pub struct Interrupted {
    pub from_user: bool,
    pub rip: u64,
    pub rsp: u64,
}

/// Whether the interrupted context was NMI context (return without IRET).
/// `nmi_stack`: this CPU's NMI stack, bottom to top inclusive (an RSP at
/// the top is a stub that has popped everything but the hardware frame).
/// `user_rsp_code`: the kernel instructions that run on the user's RSP.
pub fn interrupted_nmi_context(
    nmi_depth: u32,
    at: Interrupted,
    nmi_stack: RangeInclusive<u64>,
    user_rsp_code: &[Range<u64>],
) -> bool {
    if at.from_user {
        return false;
    }
    nmi_depth != 0 || on_nmi_stack(at, nmi_stack, user_rsp_code)
}

/// Whether the interrupted kernel RSP, trusted, lies on the NMI stack
/// (also the NMI handler's own "was the NMI stack re-entered?" test).
pub fn on_nmi_stack(at: Interrupted, nmi_stack: RangeInclusive<u64>, user_rsp_code: &[Range<u64>]) -> bool {
    !at.from_user && nmi_stack.contains(&at.rsp) && !user_rsp_code.iter().any(|code| code.contains(&at.rip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NMI: RangeInclusive<u64> = 0xffff_fe00_0000_5000..=0xffff_fe00_0000_7000;
    const SYSCALL: Range<u64> = 0xffff_ffff_8000_1000..0xffff_ffff_8000_1010;
    const SYSRET: Range<u64> = 0xffff_ffff_8000_1080..0xffff_ffff_8000_1086;
    const CODE: &[Range<u64>] = &[SYSCALL, SYSRET];

    fn kernel(rip: u64, rsp: u64) -> Interrupted {
        Interrupted { from_user: false, rip, rsp }
    }

    #[test]
    fn a_kernel_rsp_on_the_nmi_stack_is_nmi_context() {
        let stub = 0xffff_ffff_8000_2000;
        assert!(interrupted_nmi_context(0, kernel(stub, 0xffff_fe00_0000_6f00), NMI, CODE));
        assert!(interrupted_nmi_context(0, kernel(stub, *NMI.end()), NMI, CODE));
        assert!(interrupted_nmi_context(0, kernel(stub, *NMI.start()), NMI, CODE));
        assert!(!interrupted_nmi_context(0, kernel(stub, NMI.start() - 8), NMI, CODE));
        assert!(!interrupted_nmi_context(0, kernel(stub, NMI.end() + 8), NMI, CODE));
    }

    #[test]
    fn the_handler_running_is_nmi_context_wherever_its_stack_is() {
        let thread_stack = 0xffff_c900_0000_3f00;
        assert!(interrupted_nmi_context(1, kernel(0xffff_ffff_8000_3000, thread_stack), NMI, CODE));
        assert!(!interrupted_nmi_context(0, kernel(0xffff_ffff_8000_3000, thread_stack), NMI, CODE));
    }

    #[test]
    fn an_rsp_the_user_chose_is_never_trusted() {
        // The reported panic: RSP = the NMI stack's bottom, interrupted in
        // the SYSCALL entry before the switch, or in the SYSRET exit after it.
        for rip in [SYSCALL.start, SYSCALL.end - 1, SYSRET.start, SYSRET.end - 1] {
            assert!(!interrupted_nmi_context(0, kernel(rip, *NMI.start()), NMI, CODE), "{rip:x}");
            assert!(!on_nmi_stack(kernel(rip, *NMI.start()), NMI, CODE));
        }
        // ...but right after the switch RSP is the kernel's again.
        assert!(interrupted_nmi_context(0, kernel(SYSCALL.end, *NMI.start()), NMI, CODE));
    }

    #[test]
    fn user_mode_is_never_nmi_context() {
        let user = Interrupted { from_user: true, rip: 0x40_1000, rsp: *NMI.start() };
        assert!(!interrupted_nmi_context(0, user, NMI, CODE));
        assert!(!interrupted_nmi_context(1, user, NMI, CODE));
        assert!(!on_nmi_stack(user, NMI, CODE));
    }
}
