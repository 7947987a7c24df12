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
//!   it prints only when asked for a backtrace (`bt-nmi`, `bt-all`, a dying
//!   CPU), and the console writes through for its own CPU;
//! - a bug that faults in it anyway ends in an oops, which never IRETs.

use core::sync::atomic::Ordering;

use super::percpu::this_cpu;
use super::regs::Regs;
use super::vectors::X86_TRAP_NMI;
use crate::println;
use crate::stacks::info;

pub fn handle(regs: &mut Regs) {
    let dr7 = super::debug::disable_all();
    let cpu = this_cpu();
    cpu.nmi_count.fetch_add(1, Ordering::SeqCst);
    // The NMI stack must never be re-entered while live: if the interrupted
    // RSP is on it, the CPU has just overwritten a live frame. Counted, so
    // `nmi-storm` can prove it never happens.
    let (bottom, top) = crate::stacks::layout::estack_range(cpu.id(), crate::stacks::layout::EStack::NMI);
    if (bottom..top).contains(&regs.rsp) {
        cpu.nmi_stack_reentered.fetch_add(1, Ordering::SeqCst);
    }
    crate::shell::smp_cmds::nmi_storm_hit(regs);
    // `bt-nmi` only: print a backtrace from NMI context (see there why that
    // is safe in that demo).
    if crate::shell::bt_cmds::NMI_BACKTRACE.load(Ordering::SeqCst) {
        crate::shell::bt_cmds::nmi_backtrace();
    }
    // `bt-all`, or another CPU dying: print this CPU's trace (and park).
    crate::debug::nmi_backtrace::nmi_cpu_backtrace();
    super::debug::restore_all(dr7);
}

/// Send this CPU an NMI and wait for it, without printing.
pub fn self_nmi_quiet() -> bool {
    let cpu = this_cpu();
    let before = cpu.nmi_count.load(Ordering::SeqCst);
    super::apic::send_nmi_to_self();
    (0..NMI_WAIT_SPINS).any(|_| cpu.nmi_count.load(Ordering::SeqCst) != before)
}

/// Loop iterations to wait for a self-NMI (it arrives within a few
/// instructions under TCG and KVM; this only bounds a broken APIC).
const NMI_WAIT_SPINS: u64 = 100_000_000;

/// Send this CPU an NMI through the local APIC, wait for it, and report
/// where its handler ran and what it interrupted (printing happens here,
/// outside NMI context).
pub fn self_nmi_and_report(who: &str) -> bool {
    let cpu = this_cpu();
    let before = cpu.nmi_count.load(Ordering::SeqCst);
    super::apic::send_nmi_to_self();
    let mut spins = 0;
    while cpu.nmi_count.load(Ordering::SeqCst) == before {
        spins += 1;
        if spins == NMI_WAIT_SPINS {
            println!("{who}: no NMI arrived (local APIC not delivering?)");
            return false;
        }
        core::hint::spin_loop();
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
