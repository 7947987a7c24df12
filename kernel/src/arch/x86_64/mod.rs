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
mod mcount;
pub mod nmi;
pub mod percpu;
pub mod regcheck;
pub mod regs;
pub mod smpboot;
pub mod switch;
pub mod syscall;
pub mod tlb;
pub mod traps;
pub mod usermode;
pub mod vectors;

/// Bring up this CPU's exception handling: per-CPU area (GS base), its IST
/// stacks and IRQ stack, GDT and TSS, the shared IDT, the local APIC and
/// machine checks.
/// The boot CPU runs it first; each AP runs it for itself (`smpboot`).
pub fn init_cpu(cpu: usize) {
    percpu::init(cpu);
    let tops = crate::stacks::exception::init_cpu(cpu);
    crate::stacks::irq::init_cpu(cpu);
    crate::stacks::extra::init_cpu(cpu);
    gdt::init(cpu, &tops);
    if cpu == 0 {
        idt::init();
        crate::drivers::pic::remap_and_mask(vectors::PIC_VECTOR_BASE);
    }
    idt::load();
    apic::init();
    percpu::this_cpu().apic_id.store(apic::id(), core::sync::atomic::Ordering::Relaxed);
    mce::init();
    syscall::init();
    cpu::enable_protections();
}
