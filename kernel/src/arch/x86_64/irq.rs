//! External interrupts: dispatch by vector, EOI, and the way back to a
//! thread (where preemption happens).

use core::sync::atomic::Ordering;

use super::apic;
use super::percpu::this_cpu;
use super::regs::Regs;

/// Linux's vector for the local APIC timer.
pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
/// Linux's spurious-interrupt vector (also programmed into the APIC's SVR).
pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;

pub fn dispatch(regs: &mut Regs) {
    let vector = regs.vector as u8;
    let cpu = this_cpu();
    cpu.irq_counts[vector as usize].fetch_add(1, Ordering::Relaxed);
    // Linux `irq_count`: -1 outside interrupts. (The IRQ-stack issue moves
    // this into the entry code, where it decides the stack switch.)
    cpu.irq_count.fetch_add(1, Ordering::SeqCst);
    match vector {
        LOCAL_TIMER_VECTOR => {
            crate::time::tick();
            apic::eoi();
        }
        // A spurious interrupt is not in service: no EOI (SDM 10.9).
        SPURIOUS_APIC_VECTOR => {}
        _ => apic::eoi(),
    }
    cpu.irq_count.fetch_sub(1, Ordering::SeqCst);
    if vector == SPURIOUS_APIC_VECTOR {
        return;
    }
    // Back to the interrupted thread: the place to preempt it (Linux
    // `irqentry_exit` → `preempt_schedule_irq`). Interrupts were on in the
    // interrupted code, or this interrupt could not have arrived.
    crate::sched::preempt_on_irq_exit();
}
