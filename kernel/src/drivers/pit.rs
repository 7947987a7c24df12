//! The 8254 PIT, used once: as a known clock to calibrate the local APIC
//! timer and the TSC against (channel 2, one-shot, polled through port 0x61).

use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;
const CHANNEL2: u16 = 0x42;
const COMMAND: u16 = 0x43;
const GATE: u16 = 0x61;
/// Port 0x61: bit 0 = channel 2 gate, bit 1 = speaker, bit 5 = channel 2 output.
const GATE_ON: u8 = 0x01;
const SPEAKER: u8 = 0x02;
const OUT2: u8 = 0x20;

/// Busy-wait `ms` milliseconds (at most 50) on PIT channel 2.
pub fn busy_wait_ms(ms: u64) {
    assert!(ms > 0 && ms <= 50, "one-shot PIT count is 16 bits");
    let count = (PIT_HZ * ms / 1000) as u16;
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and its gate on every PC;
    // channel 2 only drives the speaker, which stays off.
    unsafe {
        let mut gate = Port::<u8>::new(GATE);
        let g = gate.read() & !SPEAKER;
        gate.write(g & !GATE_ON);
        Port::<u8>::new(COMMAND).write(0b1011_0000); // channel 2, lo/hi byte, mode 0
        let mut ch2 = Port::<u8>::new(CHANNEL2);
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        gate.write(g | GATE_ON); // start counting
        while gate.read() & OUT2 == 0 {
            core::hint::spin_loop();
        }
        gate.write(g & !GATE_ON);
    }
}
