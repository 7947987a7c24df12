//! Machine-check architecture: the bank MSRs, enabling reporting, the
//! hooks of code that raises #MC on purpose, and a software #MC. The
//! handler is the entry layer's (`entry::mce`).

use core::sync::atomic::{AtomicU32, Ordering};

use ::x86_64::registers::control::{Cr4, Cr4Flags};
use ::x86_64::registers::model_specific::Msr;

use super::regs::Regs;
use crate::hooks::FnSlots;

crate::define_per_cpu! {
    /// Machine checks that landed while an NMI (or another #MC) was running.
    pub static MCE_IN_NMI: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

crate::define_per_cpu! {
    /// Machine checks handled on this CPU (real or `int $18`).
    pub static MCE_COUNT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

pub const MSR_MCG_CAP: u32 = 0x179;
pub const MSR_MCG_STATUS: u32 = 0x17a;
pub const MSR_MCG_CTL: u32 = 0x17b;
pub const fn mc_ctl(bank: u32) -> u32 {
    0x400 + 4 * bank
}
pub const fn mc_status(bank: u32) -> u32 {
    0x401 + 4 * bank
}
pub const fn mc_addr(bank: u32) -> u32 {
    0x402 + 4 * bank
}
pub const fn mc_misc(bank: u32) -> u32 {
    0x403 + 4 * bank
}
pub const MCG_CAP_COUNT: u64 = 0xff;
pub const MCG_CTL_P: u64 = 1 << 8;
pub const MCG_STATUS_RIPV: u64 = 1 << 0;
pub const MCG_STATUS_MCIP: u64 = 1 << 2;
pub const MCI_STATUS_VAL: u64 = 1 << 63;
pub const MCI_STATUS_MISCV: u64 = 1 << 59;
pub const MCI_STATUS_ADDRV: u64 = 1 << 58;

pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only called for MSRs MCG_CAP says exist.
    unsafe { Msr::new(msr).read() }
}

pub fn wrmsr(msr: u32, v: u64) {
    // SAFETY: only MCA MSRs that MCG_CAP says exist; writing them only
    // enables reporting or clears logged errors.
    unsafe { Msr::new(msr).write(v) }
}

/// Whether the CPU has MCE and MCA (CPUID.1:EDX bits 7 and 14).
pub fn supported() -> bool {
    let edx = core::arch::x86_64::__cpuid(1).edx;
    edx & (1 << 7) != 0 && edx & (1 << 14) != 0
}

fn banks() -> u32 {
    (rdmsr(MSR_MCG_CAP) & MCG_CAP_COUNT) as u32
}

/// Enable machine-check reporting: every bank on, old logs cleared, CR4.MCE.
/// (Without CR4.MCE a machine check shuts the CPU down: a triple fault.)
pub fn init() -> Option<u32> {
    if !supported() {
        return None;
    }
    BANKS.store(banks(), Ordering::Relaxed);
    if rdmsr(MSR_MCG_CAP) & MCG_CTL_P != 0 {
        wrmsr(MSR_MCG_CTL, !0);
    }
    let n = banks();
    for bank in 0..n {
        wrmsr(mc_ctl(bank), !0);
        wrmsr(mc_status(bank), 0);
    }
    // SAFETY: the #MC gate and its IST stack are set up before this runs.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::MACHINE_CHECK_EXCEPTION)) };
    Some(n)
}

static BANKS: AtomicU32 = AtomicU32::new(0);

/// Banks enabled by `init`, or None without MCA.
pub fn banks_enabled() -> Option<u32> {
    supported().then(|| BANKS.load(Ordering::Relaxed))
}

/// Code that raises #MC on purpose and wants to see each one (the entry
/// sweep; Linux's `mce_register_decode_chain` gets every record). Runs in
/// #MC context: atomics only. Returns true to claim a *software* #MC
/// (MCIP clear), whose report line is then left out.
pub type MceHook = fn(&Regs) -> bool;

// SAFETY: MceHook is a function pointer type.
static MCE_HOOKS: FnSlots<MceHook, 4> = unsafe { FnSlots::new() };

/// Show every #MC to `hook` first (registering twice is a no-op).
pub fn register_mce_hook(hook: MceHook) {
    MCE_HOOKS.register(hook);
}

/// The registered hooks, in registration order (run by `entry::mce`).
#[inline]
pub fn hooks() -> impl Iterator<Item = MceHook> {
    MCE_HOOKS.iter()
}

/// Raise #MC in software (`int $18`): the handler runs on the MCE stack and
/// finds no machine check in progress.
pub fn int18() {
    // SAFETY: vector 18's handler returns when MCIP is clear.
    unsafe { core::arch::asm!("int 18", options(nomem, nostack)) };
}
