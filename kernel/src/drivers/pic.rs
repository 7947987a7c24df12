//! The legacy 8259 PIC pair: remapped away from the exception vectors and
//! fully masked. The BIOS leaves IRQ0 (the PIT) on vector 8, so the first
//! `sti` would deliver timer ticks to the #DF gate. The local APIC (and,
//! with the IRQ issue, the I/O APIC) take over.

use x86_64::instructions::port::Port;

const MASTER_CMD: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_CMD: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;
/// ICW1: edge triggered, cascade, ICW4 follows.
const ICW1_INIT: u8 = 0x11;
/// ICW4: 8086 mode.
const ICW4_8086: u8 = 0x01;
/// Where the PICs' 16 vectors go if anything ever slips through: just above
/// the exceptions (the I/O APIC's ISA vectors start at 0x30, as in Linux).
use crate::arch::vectors::PIC_VECTOR_BASE;

/// Remap both PICs to PIC_VECTOR_BASE.. and mask every line.
pub fn remap_and_mask() {
    // SAFETY: the standard 8259 initialisation sequence on its fixed ports;
    // it only changes which vectors the PICs raise and masks them all.
    unsafe {
        let mut mc = Port::<u8>::new(MASTER_CMD);
        let mut md = Port::<u8>::new(MASTER_DATA);
        let mut sc = Port::<u8>::new(SLAVE_CMD);
        let mut sd = Port::<u8>::new(SLAVE_DATA);
        mc.write(ICW1_INIT);
        sc.write(ICW1_INIT);
        md.write(PIC_VECTOR_BASE); // ICW2: vector offsets
        sd.write(PIC_VECTOR_BASE + 8);
        md.write(4); // ICW3: slave on IRQ2
        sd.write(2);
        md.write(ICW4_8086);
        sd.write(ICW4_8086);
        md.write(0xff); // mask everything
        sd.write(0xff);
    }
}
