//! The local APIC (xAPIC, memory-mapped): EOI, the periodic timer that
//! drives preemption, and IPIs — to this CPU, to other CPUs (fixed vectors
//! and NMIs), and the INIT and STARTUP messages that wake an AP.

use core::sync::atomic::{AtomicU64, Ordering};

use ::x86_64::registers::model_specific::Msr;

use crate::layout::PAGE_SIZE;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: u64 = 0x20;
const REG_SVR: u64 = 0xf0;
const REG_EOI: u64 = 0xb0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
/// Divide configuration 0b0011: the timer counts at bus clock / 16.
const TIMER_DIVIDE_16: u32 = 0b0011;
const LVT_PERIODIC: u32 = 1 << 17;
const LVT_MASKED: u32 = 1 << 16;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
/// SVR: APIC software enable, spurious vector 0xff.
const SVR_ENABLE: u32 = 0x100 | 0xff;
/// ICR: delivery mode NMI (0b100 << 8), level assert.
const ICR_NMI: u32 = (0b100 << 8) | (1 << 14);
/// ICR: destination shorthand "self" (fixed delivery only).
const ICR_SELF: u32 = 0b01 << 18;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: delivery mode INIT (0b101 << 8), level-triggered; assert or de-assert.
const ICR_INIT: u32 = (0b101 << 8) | (1 << 15);
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
/// ICR: delivery mode STARTUP (0b110 << 8); the vector is the start page number.
const ICR_STARTUP: u32 = 0b110 << 8;

/// Virtual address of the APIC's registers (ioremapped).
static BASE: AtomicU64 = AtomicU64::new(0);

fn reg(offset: u64) -> *mut u32 {
    let base = BASE.load(Ordering::Relaxed);
    assert!(base != 0, "local APIC used before apic::init");
    (base + offset) as *mut u32
}

fn read(offset: u64) -> u32 {
    // SAFETY: an ioremapped APIC register, 4-byte aligned.
    unsafe { reg(offset).read_volatile() }
}

fn write(offset: u64, v: u32) {
    // SAFETY: an ioremapped APIC register, 4-byte aligned.
    unsafe { reg(offset).write_volatile(v) }
}

/// The physical page of this CPU's local APIC registers (IA32_APIC_BASE).
pub fn base_pa() -> u64 {
    // SAFETY: reading IA32_APIC_BASE has no side effects.
    unsafe { Msr::new(IA32_APIC_BASE).read() & !(PAGE_SIZE - 1) & ((1 << 52) - 1) }
}

/// Where the registers are mapped, once `init` ran on some CPU.
pub fn mapped() -> Option<u64> {
    Some(BASE.load(Ordering::Relaxed)).filter(|&va| va != 0)
}

/// Software-enable the APIC on this CPU; its registers are at `va` (the
/// caller mapped `base_pa()` there: every CPU's APIC sits at the same
/// physical address, so one mapping serves all).
pub fn init(va: u64) {
    BASE.store(va, Ordering::Relaxed);
    write(REG_SVR, SVR_ENABLE);
}

/// This CPU's APIC ID.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Send an NMI to this CPU. (The "self" shorthand only allows fixed
/// delivery, so the ICR names our own APIC ID instead.)
pub fn send_nmi_to_self() {
    send_nmi(id());
}

/// Write the ICR for the CPU with APIC ID `dest` and wait until the APIC has
/// sent it. Interrupts are off in between: a handler sending its own IPI
/// between the two writes would change the destination under us.
fn send_icr(dest: u32, low: u32) {
    ::x86_64::instructions::interrupts::without_interrupts(|| {
        write(REG_ICR_HIGH, dest << 24);
        write(REG_ICR_LOW, low);
        while read(REG_ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
    })
}

/// Send an NMI to the CPU with APIC ID `dest`.
pub fn send_nmi(dest: u32) {
    send_icr(dest, ICR_NMI);
}

/// Send a fixed interrupt on `vector` to the CPU with APIC ID `dest`.
pub fn send_ipi(dest: u32, vector: u8) {
    send_icr(dest, u32::from(vector));
}

/// INIT, asserted then de-asserted (Linux `wakeup_secondary_cpu_via_init`;
/// the de-assert matters only to 82489DX-era APICs, Linux still sends it).
pub fn send_init(dest: u32) {
    send_icr(dest, ICR_INIT | ICR_LEVEL_ASSERT);
    send_icr(dest, ICR_INIT);
}

/// STARTUP IPI: the AP starts in real mode at `page` * 4 KiB (CS = page << 8, IP = 0).
pub fn send_startup(dest: u32, page: u8) {
    send_icr(dest, ICR_STARTUP | u32::from(page));
}

/// End of interrupt: the in-service vector may fire again.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Calibration result: APIC timer counts and TSC cycles per millisecond.
#[derive(Clone, Copy, Debug)]
pub struct TimerCalibration {
    pub apic_per_ms: u64,
    pub tsc_per_ms: u64,
}

/// The boot CPU's calibration; every CPU's APIC timer runs at the same rate
/// under QEMU, as on one-socket hardware.
static CALIBRATION: spin::Once<TimerCalibration> = spin::Once::new();

/// Measure the APIC timer (divide by 16) and the TSC against 10 ms of PIT
/// (once, on the boot CPU; `start_periodic_timer` uses it on every CPU).
pub fn calibrate_timer() -> TimerCalibration {
    const MS: u64 = 10;
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(super::vectors::LOCAL_TIMER_VECTOR));
    write(REG_TIMER_INITIAL, u32::MAX);
    // SAFETY: rdtsc only reads the time-stamp counter.
    let tsc0 = unsafe { core::arch::x86_64::_rdtsc() };
    crate::drivers::pit::busy_wait_ms(MS);
    let counted = u32::MAX - read(REG_TIMER_CURRENT);
    // SAFETY: as above.
    let tsc1 = unsafe { core::arch::x86_64::_rdtsc() };
    write(REG_TIMER_INITIAL, 0);
    *CALIBRATION.call_once(|| TimerCalibration { apic_per_ms: u64::from(counted) / MS, tsc_per_ms: (tsc1 - tsc0) / MS })
}

/// Fire LOCAL_TIMER_VECTOR `hz` times a second on this CPU.
pub fn start_periodic_timer(hz: u64) {
    let cal = CALIBRATION.get().expect("calibrate_timer ran on the boot CPU");
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(REG_LVT_TIMER, LVT_PERIODIC | u32::from(super::vectors::LOCAL_TIMER_VECTOR));
    write(REG_TIMER_INITIAL, (cal.apic_per_ms * 1000 / hz).max(1) as u32);
}

/// Send this CPU a fixed interrupt on `vector` (a self-IPI).
pub fn send_self_ipi(vector: u8) {
    write(REG_ICR_LOW, ICR_SELF | u32::from(vector));
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}
