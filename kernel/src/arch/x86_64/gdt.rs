//! Per-CPU GDT and TSS (Linux `cpu_init` / `load_TR_desc`).
//!
//! The TSS's IST slots point at the tops of this CPU's exception stacks in
//! the cpu entry area (`stacks::exception`). Selectors follow Linux, so an
//! oops prints `RIP: 0010:` and `RSP: 0018:` like Linux's does, and user
//! mode runs with `CS` 0x33 and `SS` 0x2b. The order is fixed by `SYSRET`,
//! which derives both user selectors from one base (`STAR[63:48]` = 0x23:
//! CS = 0x23 + 16, SS = 0x23 + 8), just as `SYSCALL` derives the kernel's
//! from 0x10 (CS = 0x10, SS = 0x18).

use ::x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use ::x86_64::instructions::tables::load_tss;
use ::x86_64::structures::gdt::Descriptor;
use ::x86_64::VirtAddr;

use super::percpu;
use crate::layout::Ist;

/// Linux `__KERNEL_CS` and `__KERNEL_DS`.
pub const KERNEL_CS: u16 = 0x10;
pub const KERNEL_DS: u16 = 0x18;
/// Linux `__USER32_CS`, `__USER_DS`, `__USER_CS` (RPL 3).
pub const USER32_CS: u16 = 0x23;
pub const USER_DS: u16 = 0x2b;
pub const USER_CS: u16 = 0x33;

/// A 32-bit ring-3 code segment (Linux's `GDT_ENTRY(0xc0fb, 0, 0xfffff)`):
/// only there to hold SYSRET's base slot; tristack runs no 32-bit code.
const USER32_CODE: u64 = 0x00cf_fb00_0000_ffff;

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
    let user32 = gdt.append(Descriptor::UserSegment(USER32_CODE));
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    let tss: &'static _ = tss;
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    assert_eq!((code.0, data.0), (KERNEL_CS, KERNEL_DS));
    assert_eq!((user32.0, user_data.0, user_code.0), (USER32_CS, USER_DS, USER_CS));
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

/// The running thread's stack top, where every entry from user mode starts:
/// TSS RSP0 (the CPU loads it on an interrupt or exception from ring 3) and
/// the per-CPU `top_of_stack` (the syscall entry loads it itself; Linux
/// `cpu_current_top_of_stack`). Set on every switch (Linux `switch_to`).
// Not traced (Linux `notrace`): on every context switch; see docs/performance.md.
#[instrument_fn = "off"]
pub fn set_top_of_stack(top: u64) {
    percpu::this_cpu().top_of_stack.store(top, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: this CPU's own TSS; a single aligned store the CPU reads only
    // on a privilege change.
    unsafe {
        let tss = percpu::this_cpu().tss.get();
        // As a plain u64: a stack top is canonical, so `VirtAddr`'s
        // sign extension would only cost the switch instructions.
        core::ptr::addr_of_mut!((*tss).privilege_stack_table[0]).cast::<u64>().write_unaligned(top);
    }
}
