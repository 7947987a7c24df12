//! The NMI handler (Linux `exc_nmi`): runs on the NMI IST stack, counts per
//! CPU, runs the registered handlers (`arch::nmi`).
//!
//! The danger on the NMI stack (Linux's long comment in entry_64.S): the CPU
//! blocks further NMIs until the next IRET. If the NMI handler took any
//! exception, that exception's IRET would unblock NMIs while we are still on
//! the NMI stack, and a second NMI would start again at the same IST top,
//! overwriting the live frame. tristack avoids the exception instead of
//! implementing Linux's nested-NMI trampoline:
//! - the handler disables hardware breakpoints for its duration (no #DB;
//!   Linux `local_db_save`), and there is no `int3` in it;
//! - it touches only per-CPU atomics: no locks, no allocation (no #PF);
//!   its registered handlers print only when asked for a backtrace (`bt-nmi`,
//!   `bt-all`, a dying CPU), and the console writes through for its own CPU;
//! - a bug that faults in it anyway ends in an oops, which never IRETs.

use core::ops::RangeInclusive;
use core::sync::atomic::Ordering;

use super::user_rsp_code;
use crate::arch::percpu::{this_cpu, PerCpu};
use crate::arch::regs::Regs;
use crate::layout::{Ist, EXCEPTION_STKSZ};
use crate::stacks::nmi_return::{self, Interrupted};

pub fn handle(regs: &mut Regs) {
    let dr7 = crate::arch::debug::disable_all();
    let cpu = this_cpu();
    cpu.nmi_enter();
    crate::arch::nmi::NMI_COUNT.this().fetch_add(1, Ordering::SeqCst);
    // The NMI stack must never be re-entered while live: if the interrupted
    // (kernel, trusted) RSP is on it, the CPU has just overwritten a live
    // frame. Counted, so `nmi-storm` and the entry sweep can prove it never
    // happens.
    if nmi_return::on_nmi_stack(interrupted(regs), nmi_stack(cpu), &user_rsp_code()) {
        crate::arch::nmi::NMI_STACK_REENTERED.this().fetch_add(1, Ordering::SeqCst);
    }
    crate::arch::nmi::handlers().for_each(|handler| handler(regs));
    cpu.nmi_exit();
    crate::arch::debug::restore_all(dr7);
}

/// The exit decision of every exception's way back into kernel mode
/// (`RETURN_TO_KERNEL` in entry.rs): 1 to return without IRET into NMI
/// context, 0 to IRET. A whole word: the stub stores RAX as it is.
pub extern "C" fn kernel_return(regs: &Regs) -> u64 {
    u64::from(returns_into_nmi(regs))
}

/// Whether the interrupted code is NMI context, so the return must not
/// IRET (`stacks::nmi_return` has the rule and why RSP alone is not it).
pub fn returns_into_nmi(regs: &Regs) -> bool {
    let cpu = this_cpu();
    nmi_return::interrupted_nmi_context(cpu.nmi_depth(), interrupted(regs), nmi_stack(cpu), &user_rsp_code())
}

fn interrupted(regs: &Regs) -> Interrupted {
    Interrupted { from_user: regs.from_user(), rip: regs.rip, rsp: regs.rsp }
}

/// This CPU's NMI stack as its TSS has it, bottom to top inclusive.
fn nmi_stack(cpu: &PerCpu) -> RangeInclusive<u64> {
    let top = cpu.ist(Ist::NMI);
    top - EXCEPTION_STKSZ..=top
}
