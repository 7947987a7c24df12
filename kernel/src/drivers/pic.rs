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
/// Remap both PICs to vectors `base..base + 16` and mask every line.
pub fn remap_and_mask(base: u8) {
    // SAFETY: the standard 8259 initialisation sequence on its fixed ports;
    // it only changes which vectors the PICs raise and masks them all.
    unsafe {
        let mut mc = Port::<u8>::new(MASTER_CMD);
        let mut md = Port::<u8>::new(MASTER_DATA);
        let mut sc = Port::<u8>::new(SLAVE_CMD);
        let mut sd = Port::<u8>::new(SLAVE_DATA);
        mc.write(ICW1_INIT);
        sc.write(ICW1_INIT);
        md.write(base); // ICW2: vector offsets
        sd.write(base + 8);
        md.write(4); // ICW3: slave on IRQ2
        sd.write(2);
        md.write(ICW4_8086);
        sd.write(ICW4_8086);
        md.write(0xff); // mask everything
        sd.write(0xff);
    }
}
