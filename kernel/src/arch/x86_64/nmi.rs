//! NMI: runs on the NMI IST stack, counts per CPU.
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

use super::entry::user_rsp_code;
use super::percpu::{this_cpu, PerCpu};
use super::regs::Regs;
use super::tsc::{spin_until, SPIN_WAIT_MS};
use super::vectors::X86_TRAP_NMI;
use crate::hooks::FnSlots;
use crate::layout::{Ist, EXCEPTION_STKSZ};
use crate::println;
use crate::stacks::info;
use crate::stacks::nmi_return::{self, Interrupted};

/// Code that wants to see every NMI on every CPU (Linux
/// `register_nmi_handler(NMI_LOCAL, ...)`): NMI backtraces, the `bt-nmi` and
/// `nmi-storm` demos. It runs on the NMI stack with breakpoints off and must
/// take no lock another context of this CPU could hold, and never fault.
pub type NmiHandler = fn(&Regs);

// SAFETY: NmiHandler is a function pointer type.
static NMI_HANDLERS: FnSlots<NmiHandler, 8> = unsafe { FnSlots::new() };

/// Add `handler` to the handlers every NMI runs (in registration order).
/// Registering the same handler twice is a no-op.
pub fn register_nmi_handler(handler: NmiHandler) {
    NMI_HANDLERS.register(handler);
}

pub fn handle(regs: &mut Regs) {
    let dr7 = super::debug::disable_all();
    let cpu = this_cpu();
    cpu.nmi_depth.fetch_add(1, Ordering::SeqCst);
    cpu.nmi_count.fetch_add(1, Ordering::SeqCst);
    // The NMI stack must never be re-entered while live: if the interrupted
    // (kernel, trusted) RSP is on it, the CPU has just overwritten a live
    // frame. Counted, so `nmi-storm` and the entry sweep can prove it never
    // happens.
    if nmi_return::on_nmi_stack(interrupted(regs), nmi_stack(cpu), &user_rsp_code()) {
        cpu.nmi_stack_reentered.fetch_add(1, Ordering::SeqCst);
    }
    NMI_HANDLERS.iter().for_each(|handler| handler(regs));
    cpu.nmi_depth.fetch_sub(1, Ordering::SeqCst);
    super::debug::restore_all(dr7);
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
    nmi_return::interrupted_nmi_context(
        cpu.nmi_depth.load(Ordering::SeqCst),
        interrupted(regs),
        nmi_stack(cpu),
        &user_rsp_code(),
    )
}

fn interrupted(regs: &Regs) -> Interrupted {
    Interrupted { from_user: regs.from_user(), rip: regs.rip, rsp: regs.rsp }
}

/// This CPU's NMI stack as its TSS has it, bottom to top inclusive.
fn nmi_stack(cpu: &PerCpu) -> RangeInclusive<u64> {
    let top = cpu.ist(Ist::NMI);
    top - EXCEPTION_STKSZ..=top
}

/// Send this CPU an NMI and wait for it, without printing.
pub fn self_nmi_quiet() -> bool {
    let cpu = this_cpu();
    let before = cpu.nmi_count.load(Ordering::SeqCst);
    super::apic::send_nmi_to_self();
    spin_until(SPIN_WAIT_MS, || cpu.nmi_count.load(Ordering::SeqCst) != before)
}

/// Send this CPU an NMI through the local APIC, wait for it, and report
/// where its handler ran and what it interrupted (printing happens here,
/// outside NMI context).
pub fn self_nmi_and_report(who: &str) -> bool {
    if !self_nmi_quiet() {
        println!("{who}: no NMI arrived (local APIC not delivering?)");
        return false;
    }
    report_last(who);
    true
}

/// Print where the last NMI on this CPU ran and what it interrupted.
pub fn report_last(who: &str) {
    let cpu = this_cpu();
    let frame = cpu.handler_rsp[X86_TRAP_NMI as usize].load(Ordering::SeqCst);
    let interrupted = cpu.interrupted_rsp[X86_TRAP_NMI as usize].load(Ordering::SeqCst);
    println!(
        "{who}: NMI #{} on CPU {} handled on the {} stack (frame {frame:016x}), interrupted RSP {interrupted:016x} on {}",
        cpu.nmi_count.load(Ordering::SeqCst),
        cpu.id(),
        info::name_of(frame),
        info::name_of(interrupted)
    );
}
