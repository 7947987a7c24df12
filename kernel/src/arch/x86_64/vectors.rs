//! Every interrupt vector and exception number, by name, in one place
//! (Linux `arch/x86/include/asm/irq_vectors.h` and `trapnr.h`).
//!
//! The vector space, highest first:
//! ```text
//!   0xff        SPURIOUS_APIC_VECTOR
//!   0xfe        ENTRY_SWEEP_VECTOR           \
//!   0xfd        RESCHEDULE_VECTOR             |
//!   0xfb        CALL_FUNCTION_SINGLE_VECTOR   } system vectors: FIRST_SYSTEM_VECTOR..
//!   0xec        LOCAL_TIMER_VECTOR           /
//!   0x40..0xbf  demo block: self-IPIs the demos send themselves
//!   0x30..0x3f  ISA IRQ 0..15 through the I/O APIC (ISA_IRQ_VECTOR(irq))
//!   0x20..0x2f  the legacy 8259 PICs, remapped here and masked
//!   0x20        FIRST_EXTERNAL_VECTOR
//!   0x00..0x1f  exceptions (X86_TRAP_*)
//! ```
//! Higher vectors win the local APIC's priority classes (vector / 16), which
//! is why `irqnest` spreads its levels over one class each.
//! A vector can still be registered only once (`irq::register` panics).

// --- Exceptions (Linux trapnr.h) ---------------------------------------------

pub const X86_TRAP_DE: u8 = 0;
pub const X86_TRAP_DB: u8 = 1;
pub const X86_TRAP_NMI: u8 = 2;
pub const X86_TRAP_BP: u8 = 3;
pub const X86_TRAP_OF: u8 = 4;
pub const X86_TRAP_UD: u8 = 6;
pub const X86_TRAP_DF: u8 = 8;
pub const X86_TRAP_GP: u8 = 13;
pub const X86_TRAP_PF: u8 = 14;
pub const X86_TRAP_MC: u8 = 18;
/// Exceptions occupy vectors 0..NR_EXCEPTIONS.
pub const NR_EXCEPTIONS: usize = 32;
/// The vector word of a syscall's register frame: no IDT vector (those are
/// 0..256), so a frame says whether a syscall or an interrupt built it.
pub const SYSCALL_FRAME: u64 = 256;

// --- System vectors -----------------------------------------------------------

/// Also programmed into the local APIC's SVR.
pub const SPURIOUS_APIC_VECTOR: u8 = 0xff;
/// The IRQ `entry-sweep` makes pending at an instruction (a self-IPI):
/// above every other interrupt, so that a timer tick or an IPI pending at
/// the same moment is not delivered first — its exit runs softirqs with
/// interrupts on, and the sweep's IRQ would land there instead of at the
/// instruction (seen about once in ten sweeps while it was a demo vector).
pub const ENTRY_SWEEP_VECTOR: u8 = 0xfe;
pub const RESCHEDULE_VECTOR: u8 = 0xfd;
pub const CALL_FUNCTION_SINGLE_VECTOR: u8 = 0xfb;
pub const LOCAL_TIMER_VECTOR: u8 = 0xec;
pub const FIRST_SYSTEM_VECTOR: u8 = LOCAL_TIMER_VECTOR;

// --- The demo block ------------------------------------------------------------

/// Vectors the demos claim at init (`irq::claim`, `irq::claim_in_class`),
/// first come first served: Linux hands out device vectors the same way
/// (`assign_irq_vector`). Only the two below are fixed, because they are
/// immediates of `int N` (and the no-switch stub's gate).
pub const FIRST_DEMO_VECTOR: u8 = 0x40;
pub const LAST_DEMO_VECTOR: u8 = 0xbf;
/// `bench irq`: this vector's gate enters through a stub that never switches
/// to the IRQ stack; BENCH_SWITCH_VECTOR takes the normal path.
pub const BENCH_NOSWITCH_VECTOR: u8 = 0x46;
pub const BENCH_SWITCH_VECTOR: u8 = 0x47;
/// The demo block's vectors no claim hands out.
pub const FIXED_DEMO_VECTORS: [u8; 2] = [BENCH_NOSWITCH_VECTOR, BENCH_SWITCH_VECTOR];

// --- Device interrupts --------------------------------------------------------------

/// ISA IRQ 0..15 arrive through the I/O APIC on 0x30..0x3f (Linux `ISA_IRQ_VECTOR`).
pub const ISA_IRQ_VECTOR_BASE: u8 = 0x30;
pub const fn isa_irq_vector(irq: u8) -> u8 {
    ISA_IRQ_VECTOR_BASE + irq
}
/// The 8259 PICs' vectors (0x20..0x2f) once remapped; both are masked.
pub const PIC_VECTOR_BASE: u8 = 0x20;
pub const FIRST_EXTERNAL_VECTOR: u8 = 0x20;

/// Every fixed vector above the exceptions, with its name, to check below
/// that none is used twice and each sits in its range.
const FIXED: [(u8, &str); 7] = [
    (SPURIOUS_APIC_VECTOR, "spurious"),
    (ENTRY_SWEEP_VECTOR, "entry sweep"),
    (RESCHEDULE_VECTOR, "reschedule"),
    (CALL_FUNCTION_SINGLE_VECTOR, "call function"),
    (LOCAL_TIMER_VECTOR, "local timer"),
    (BENCH_NOSWITCH_VECTOR, "bench no switch"),
    (BENCH_SWITCH_VECTOR, "bench switch"),
];

// Checked at compile time: fixed demo vectors stay in their block and
// system vectors above it, no vector is named twice, and the ranges do not
// overlap.
const _: () = {
    let mut i = 0;
    while i < FIXED.len() {
        let v = FIXED[i].0;
        assert!(v >= FIRST_SYSTEM_VECTOR || (v >= FIRST_DEMO_VECTOR && v <= LAST_DEMO_VECTOR));
        let mut j = i + 1;
        while j < FIXED.len() {
            assert!(FIXED[j].0 != v, "a vector is named twice");
            j += 1;
        }
        i += 1;
    }
    assert!(isa_irq_vector(15) < FIRST_DEMO_VECTOR);
    assert!(PIC_VECTOR_BASE + 15 < ISA_IRQ_VECTOR_BASE);
    assert!(FIRST_EXTERNAL_VECTOR as usize == NR_EXCEPTIONS);
};
