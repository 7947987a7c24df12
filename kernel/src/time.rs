//! Kernel time: the tick count (HZ per second, from the local APIC timer)
//! and the TSC rate for converting cycles.

use core::sync::atomic::{AtomicU64, Ordering};

/// Timer interrupts per second (Linux's common x86 default).
pub const HZ: u64 = 250;

static JIFFIES: AtomicU64 = AtomicU64::new(0);
static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);

/// Called by every CPU's timer interrupt. Only CPU 0 advances jiffies
/// (Linux `tick_do_timer_cpu`). What else a tick does (the scheduler's
/// time slice, the timer softirq) the interrupt handler calls itself.
pub fn tick(cpu: usize) {
    if cpu == 0 {
        JIFFIES.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ticks since the timer started (Linux `jiffies`).
pub fn jiffies() -> u64 {
    JIFFIES.load(Ordering::Relaxed)
}

/// Ticks covering at least `ms` milliseconds (at least one).
pub fn ms_to_ticks(ms: u64) -> u64 {
    ms.saturating_mul(HZ).div_ceil(1000).max(1)
}

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
