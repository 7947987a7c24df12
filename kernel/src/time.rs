//! Kernel time: the tick count (HZ per second, from the local APIC timer);
//! the TSC rate and the delays built on it are `arch::tsc`'s, re-exported.

use core::sync::atomic::{AtomicU64, Ordering};

/// Timer interrupts per second (Linux's common x86 default).
pub const HZ: u64 = 250;

static JIFFIES: AtomicU64 = AtomicU64::new(0);

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

// The TSC is the CPU's: its rate, delays and bounded waits live in
// `arch::tsc` (the CPU bring-up needs them below this layer).
pub use crate::arch::tsc::{rdtsc, set_tsc_per_ms, spin_until, tsc_per_ms, udelay, SPIN_WAIT_MS};
