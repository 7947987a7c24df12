//! NMIs: the handlers every NMI runs (registered by the code that wants
//! them: backtraces, demos) and a self-NMI. The NMI handler itself, and
//! the rule for returning into NMI context, are the entry layer's
//! (`entry::nmi`).

use core::sync::atomic::Ordering;

use super::percpu::this_cpu;
use super::regs::Regs;
use super::tsc::{spin_until, SPIN_WAIT_MS};
use crate::hooks::FnSlots;

crate::define_per_cpu! {
    /// NMIs that arrived while RSP was already on this CPU's NMI stack (a
/// live IST stack reused: must stay 0).
    pub static NMI_STACK_REENTERED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

crate::define_per_cpu! {
    /// NMIs handled on this CPU.
    pub static NMI_COUNT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

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

/// The registered handlers, in registration order (run by `entry::nmi`).
#[inline]
pub fn handlers() -> impl Iterator<Item = NmiHandler> {
    NMI_HANDLERS.iter()
}

/// Send this CPU an NMI and wait for it, without printing.
pub fn self_nmi_quiet() -> bool {
    let cpu = this_cpu();
    let before = crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst);
    super::apic::send_nmi_to_self();
    spin_until(SPIN_WAIT_MS, || crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst) != before)
}
