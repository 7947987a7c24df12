//! The time-stamp counter: its rate (calibrated at boot against the PIT),
//! delays and bounded waits. Below everything that waits — CPU bring-up,
//! NMIs, locks — so it is the CPU's, not the clock's (`time`).

use core::sync::atomic::{AtomicU64, Ordering};

static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);

pub fn set_tsc_per_ms(v: u64) {
    TSC_PER_MS.store(v, Ordering::Relaxed);
}

pub fn tsc_per_ms() -> u64 {
    TSC_PER_MS.load(Ordering::Relaxed)
}

/// Busy-wait at least `us` microseconds by the TSC (calibrated at boot).
pub fn udelay(us: u64) {
    let end = rdtsc() + (tsc_per_ms() * us).div_ceil(1000);
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// How long to wait for something that arrives within microseconds — a
/// self-IPI, an NMI, another CPU's answer to an IPI. Only a broken APIC
/// misses it, so this bound only turns a hang into an error.
pub const SPIN_WAIT_MS: u64 = 2_000;

/// Spin until `cond` holds or `ms` milliseconds (by the TSC) have passed;
/// returns whether it held. Works with interrupts off and in NMI context.
pub fn spin_until(ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = rdtsc().saturating_add(tsc_per_ms().max(1).saturating_mul(ms));
    loop {
        if cond() {
            return true;
        }
        if rdtsc() > deadline {
            return cond();
        }
        core::hint::spin_loop();
    }
}
