//! x86_64: everything that names a register or an instruction. Inside this
//! module the `x86_64` crate is spelled `::x86_64`.

pub mod apic;
pub mod call_on_stack;
pub mod cpu;
pub mod debug;
pub mod entry;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod irq;
pub mod mce;
pub mod mcount;
pub mod nmi;
pub mod percpu;
pub mod process;
pub mod regcheck;
pub mod regs;
pub mod smpboot;
pub mod stackleak;
pub mod switch;
pub mod tsc;
pub mod vectors;
