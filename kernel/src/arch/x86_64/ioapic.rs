//! The I/O APIC: routes device interrupt lines (global system interrupts)
//! to vectors on a CPU's local APIC. Found through the ACPI MADT.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::drivers::acpi::{IoApicInfo, IsaRoute};

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_VER: u32 = 0x01;
const fn redtbl(n: u32) -> u32 {
    0x10 + 2 * n
}
const RED_ACTIVE_LOW: u32 = 1 << 13;
const RED_LEVEL: u32 = 1 << 15;
const RED_MASKED: u32 = 1 << 16;

pub use super::vectors::isa_irq_vector;

/// The (first) I/O APIC: its mapped registers and first GSI.
static BASE: AtomicU64 = AtomicU64::new(0);
static GSI_BASE: AtomicU64 = AtomicU64::new(0);

fn write(reg: u32, v: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: the I/O APIC's ioremapped index/data window; callers run with
    // interrupts off or before other users exist.
    unsafe {
        ((base + IOREGSEL) as *mut u32).write_volatile(reg);
        ((base + IOWIN) as *mut u32).write_volatile(v);
    }
}

fn read(reg: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `write`.
    unsafe {
        ((base + IOREGSEL) as *mut u32).write_volatile(reg);
        ((base + IOWIN) as *const u32).read_volatile()
    }
}

/// Mask all inputs of the I/O APIC `info` describes, whose registers the
/// caller mapped at `va`; returns how many inputs it has.
pub fn init(info: &IoApicInfo, va: u64) -> u32 {
    BASE.store(va, Ordering::Relaxed);
    GSI_BASE.store(u64::from(info.gsi_base), Ordering::Relaxed);
    let inputs = ((read(REG_VER) >> 16) & 0xff) + 1;
    for n in 0..inputs {
        write(redtbl(n), RED_MASKED);
        write(redtbl(n) + 1, 0);
    }
    inputs
}

/// Route `route` to `vector` on the CPU with local APIC id `apic_id`, unmasked.
pub fn route(route: IsaRoute, vector: u8, apic_id: u32) {
    let n = route.gsi - GSI_BASE.load(Ordering::Relaxed) as u32;
    let mut low = u32::from(vector); // fixed delivery, physical destination
    if route.active_low {
        low |= RED_ACTIVE_LOW;
    }
    if route.level {
        low |= RED_LEVEL;
    }
    write(redtbl(n) + 1, apic_id << 24);
    write(redtbl(n), low);
}
