//! Bringing the other CPUs up (Linux `smp_init`, `bringup_cpu`): one at a
//! time in MADT order, each on its idle task's stack; then its tick, its
//! ksoftirqd, and it becomes its idle task. Above the scheduler and
//! softirqs, which the rest of `smp` (the IPIs) is below.

use crate::arch::{apic, smpboot};
use crate::drivers::acpi::Madt;
use crate::layout::{cea_base, MAX_CPUS};
use crate::sync::IrqMutex;
use crate::{println, time};

/// MADT processors that are not online, and why (for `cpus`).
static NOT_ONLINE: IrqMutex<alloc::vec::Vec<(u32, &'static str)>> = IrqMutex::new(alloc::vec::Vec::new());

/// (APIC id, reason) of every MADT processor that is not online.
pub fn not_online() -> alloc::vec::Vec<(u32, &'static str)> {
    NOT_ONLINE.lock().clone()
}

/// The trampoline below 1 MiB and its page table, whose three frames come
/// from the frame allocator (below 4 GiB: real mode loads 32 bits of CR3).
fn install_trampoline() -> Result<(), smpboot::StartError> {
    use crate::mm::phys;
    if smpboot::trampoline_installed() {
        return Ok(());
    }
    if !phys::low_frame_usable(crate::layout::TRAMPOLINE_PHYS) {
        return Err(smpboot::StartError::TrampolinePageNotRam);
    }
    let mut frames = [0u64; 3];
    for f in &mut frames {
        *f = phys::alloc_frame().ok_or(smpboot::StartError::NoMemory)?.start_address().as_u64();
    }
    smpboot::install_trampoline(frames)
}

/// Start every AP the MADT lists as usable, one at a time; CPU numbers
/// follow MADT order after the BSP (CPU 0). Each runs `ap_main(cpu)`.
pub fn boot_secondary_cpus(madt: &Madt, ap_main: fn(usize) -> !) {
    let me = apic::id();
    let mut next = 1;
    for p in madt.processors.iter().filter(|p| p.apic_id != me) {
        if !p.usable {
            println!("smpboot: APIC id {} is disabled in the MADT; not starting it", p.apic_id);
            NOT_ONLINE.lock().push((p.apic_id, "disabled in the MADT"));
            continue;
        }
        if next == MAX_CPUS {
            println!("smpboot: more than {MAX_CPUS} CPUs; not starting APIC id {}", p.apic_id);
            NOT_ONLINE.lock().push((p.apic_id, "beyond MAX_CPUS"));
            continue;
        }
        let cpu = next;
        let top = match crate::sched::create_idle(cpu) {
            Ok(top) => top,
            Err(e) => {
                println!("smpboot: no idle stack for CPU {cpu}: {e}");
                NOT_ONLINE.lock().push((p.apic_id, "no memory for its idle stack"));
                continue;
            }
        };
        match install_trampoline().and_then(|()| smpboot::start_ap(cpu, p.apic_id, top, ap_main)) {
            Ok(()) => {
                println!(
                    "smpboot: CPU {cpu} (APIC id {}) online: IST stacks at {:#x}, IRQ stack at {:#x}, idle stack top {top:#x}",
                    p.apic_id,
                    cea_base(cpu),
                    crate::stacks::irq::range(cpu).map_or(0, |r| r.0)
                );
                next += 1;
            }
            Err(e) => {
                // Its idle task stays allocated: the AP may still wake up
                // late and run on that stack (Linux keeps it too).
                println!("smpboot: CPU {cpu} (APIC id {}) failed to start: {e}", p.apic_id);
                NOT_ONLINE.lock().push((p.apic_id, "did not start"));
                break;
            }
        }
    }
    println!("smp: Brought up 1 node, {} CPU{}", next, if next == 1 { "" } else { "s" });
}

/// An AP's last step of bring-up (on its idle stack, after `boot::init_cpu`): its
/// tick, its ksoftirqd, then it becomes its idle task.
pub fn secondary_start(cpu: usize) -> ! {
    crate::arch::apic::start_periodic_timer(time::HZ);
    crate::sched::spawn_on(
        &alloc::format!("ksoftirqd/{cpu}"),
        crate::softirq::ksoftirqd,
        cpu as u64,
        crate::sched::Placement::Pinned(cpu),
    )
    .expect("ksoftirqd stack");
    crate::sched::run_idle(cpu)
}
