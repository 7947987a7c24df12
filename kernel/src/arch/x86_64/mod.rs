//! x86_64: CPU helpers now; GDT/TSS, IDT, entry stubs, APIC and SMP arrive
//! with their issues. Inside this module the crate is `::x86_64`.

pub mod cpu;
