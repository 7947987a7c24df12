//! Per-CPU GDT and TSS (Linux `cpu_init` / `load_TR_desc`).
//!
//! The TSS's IST slots point at the tops of this CPU's exception stacks in
//! the cpu entry area (`stacks::exception`). Selectors follow Linux, so an
//! oops prints `RIP: 0010:` and `RSP: 0018:` like Linux's does.

use ::x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use ::x86_64::instructions::tables::load_tss;
use ::x86_64::structures::gdt::Descriptor;
use ::x86_64::VirtAddr;

use super::percpu;
use crate::stacks::layout::Ist;

/// Linux `__KERNEL_CS` and `__KERNEL_DS`.
pub const KERNEL_CS: u16 = 0x10;
pub const KERNEL_DS: u16 = 0x18;

/// Fill `cpu`'s TSS IST slots with `tops` and load its GDT, segments and TSS.
/// Runs on `cpu` itself, after `percpu::init(cpu)`.
pub fn init(cpu: usize, tops: &[(Ist, u64)]) {
    let area = percpu::of(cpu);
    // SAFETY: this CPU is being brought up: nothing else uses its TSS and GDT
    // yet, and the static areas live forever (`load` needs 'static).
    let (tss, gdt) = unsafe { (&mut *area.tss.get(), &mut *area.gdt.get()) };
    for &(ist, top) in tops {
        tss.interrupt_stack_table[ist.tss_slot()] = VirtAddr::new(top);
    }
    gdt.append(Descriptor::UserSegment(0)); // Linux's KERNEL32_CS slot
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss: &'static _ = tss;
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    assert_eq!((code.0, data.0), (KERNEL_CS, KERNEL_DS));
    let gdt: &'static _ = gdt;
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with the right types.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_sel);
    }
}

/// TSS RSP0: the stack the CPU loads on an interrupt from user mode. There is
/// no user mode yet, but it is kept pointing at the running thread's stack
/// top, as Linux's `switch_to` does.
pub fn set_rsp0(top: u64) {
    // SAFETY: this CPU's own TSS; a single aligned store the CPU reads only
    // on a privilege change.
    unsafe {
        let tss = percpu::this_cpu().tss.get();
        core::ptr::addr_of_mut!((*tss).privilege_stack_table[0]).write_unaligned(VirtAddr::new(top));
    }
}
