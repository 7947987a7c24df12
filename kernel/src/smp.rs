//! More than one CPU: bringing the APs up, and the IPIs CPUs send each other
//! (Linux `kernel/smp.c`, `arch/x86/kernel/smp.c`, `arch/x86/mm/tlb.c`).
//!
//! - Reschedule IPI: "your run queue changed" — the handler does nothing;
//!   the IRQ exit back to the interrupted thread is where it reschedules.
//! - Function call IPI: run a function on another CPU, in hard-IRQ context
//!   on its IRQ stack, and wait until it has run. TLB shoot-down
//!   (`arch::tlb`) is one.
//!
//! Waiting for another CPU with interrupts off would deadlock if that CPU
//! waits for us the same way, so a waiter with interrupts off runs the calls
//! queued for its own CPU while it spins.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::arch::{apic, irq, smpboot};
use crate::drivers::acpi::Madt;
use crate::layout::{cea_base, MAX_CPUS};
use crate::sync::IrqMutex;
use crate::{println, time};

use crate::arch::vectors::{CALL_FUNCTION_SINGLE_VECTOR, RESCHEDULE_VECTOR};

/// A function call request: run `func(arg)`, then count it in `*done`.
#[derive(Clone, Copy)]
struct Call {
    func: fn(u64),
    arg: u64,
    /// Address of the sender's `AtomicU64` counter (the sender waits, so it lives).
    done: u64,
}

static CALL_QUEUES: [IrqMutex<VecDeque<Call>>; MAX_CPUS] = [const { IrqMutex::new(VecDeque::new()) }; MAX_CPUS];

/// Register the IPI handlers (the vectors are shared by every CPU).
pub fn init() {
    irq::register(RESCHEDULE_VECTOR, |_: &mut Regs| {}, "RES    Rescheduling interrupts");
    irq::register(CALL_FUNCTION_SINGLE_VECTOR, call_function_interrupt, "CAL    Function call interrupts");
}

fn apic_id_of(cpu: usize) -> u32 {
    percpu::of(cpu).apic_id.load(Ordering::Relaxed)
}

/// Ask `cpu` to reschedule (Linux `smp_send_reschedule`).
pub fn send_reschedule(cpu: usize) {
    if percpu::is_online(cpu) {
        apic::send_ipi(apic_id_of(cpu), RESCHEDULE_VECTOR);
    }
}

/// Send `cpu` an NMI (`nmi-storm`, NMI backtraces).
pub fn send_nmi(cpu: usize) {
    apic::send_nmi(apic_id_of(cpu));
}

fn call_function_interrupt(_: &mut Regs) {
    run_queued_calls();
}

/// Run every call queued for this CPU (interrupts off).
fn run_queued_calls() {
    let queue = &CALL_QUEUES[this_cpu().id()];
    loop {
        // The queue's lock is released before the call runs.
        let Some(call) = queue.lock().pop_front() else { break };
        (call.func)(call.arg);
        // SAFETY: `done` is the sender's counter; it waits until we count.
        unsafe { &*(call.done as *const AtomicU64) }.fetch_add(1, Ordering::Release);
    }
}

/// Run `func(arg)` on every CPU in `cpus` other than this one, in hard-IRQ
/// context there, and wait until all have run it (Linux
/// `smp_call_function_many` with `wait`). Returns how many ran it.
pub fn call_on(cpus: impl Iterator<Item = usize>, func: fn(u64), arg: u64) -> u64 {
    let done = AtomicU64::new(0);
    let me = percpu::current_cpu_id();
    let mut sent = 0;
    for cpu in cpus.filter(|&c| c != me && percpu::is_online(c)) {
        CALL_QUEUES[cpu].lock().push_back(Call { func, arg, done: &done as *const AtomicU64 as u64 });
        apic::send_ipi(apic_id_of(cpu), CALL_FUNCTION_SINGLE_VECTOR);
        sent += 1;
    }
    let all_ran = time::spin_until(CALL_TIMEOUT_MS, || {
        if !::x86_64::instructions::interrupts::are_enabled() {
            run_queued_calls();
        }
        done.load(Ordering::Acquire) >= sent
    });
    if !all_ran {
        // Never return while a CPU may still write `done` on our stack.
        panic!(
            "smp: {} of {sent} CPUs did not run a function call within {CALL_TIMEOUT_MS} ms",
            sent - done.load(Ordering::Acquire)
        );
    }
    sent
}

const CALL_TIMEOUT_MS: u64 = 5_000;

// --- Bring-up ---------------------------------------------------------------

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

pub mod ktests {
    use core::sync::atomic::{AtomicU64, Ordering};

    use crate::arch::percpu::{self, this_cpu};
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::layout::MAX_CPUS;

    pub static KTESTS: &[KTest] =
        &[KTest { name: "call_runs_on_each_cpus_own_irq_stack", run: call_runs_on_each_cpus_own_irq_stack }];

    /// Per CPU: the stack pointer its call ran on (0 = did not run), and the
    /// address of the per-CPU area its GS base pointed at.
    static SP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
    static AREA: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

    fn record(_: u64) {
        let me = this_cpu();
        SP[me.id()].store(crate::arch::cpu::stack_pointer(), Ordering::SeqCst);
        AREA[me.id()].store(me as *const _ as u64, Ordering::SeqCst);
    }

    /// A function call reaches every other online CPU once, runs in hard-IRQ
    /// context on *that* CPU's IRQ stack, with GS on that CPU's own area.
    fn call_runs_on_each_cpus_own_irq_stack() -> KResult {
        SP.iter().chain(AREA.iter()).for_each(|a| a.store(0, Ordering::SeqCst));
        let me = percpu::current_cpu_id();
        let others = percpu::online_cpus().filter(|&c| c != me).count() as u64;
        let ran = super::call_on(percpu::online_cpus(), record, 0);
        kcheck!(ran == others, "{ran} CPUs ran the call, {others} others are online");
        for cpu in percpu::online_cpus().filter(|&c| c != me) {
            let sp = SP[cpu].load(Ordering::SeqCst);
            let (bottom, top) = crate::stacks::irq::range(cpu).ok_or("no IRQ stack")?;
            kcheck!(
                (bottom..top).contains(&sp),
                "CPU {cpu}'s call ran at {sp:#x}, not on its IRQ stack {bottom:#x}..{top:#x}"
            );
            let area = AREA[cpu].load(Ordering::SeqCst);
            kcheck!(area == percpu::of(cpu) as *const _ as u64, "CPU {cpu}'s GS pointed at {area:#x}");
        }
        kcheck!(SP[me].load(Ordering::SeqCst) == 0, "the call also ran on the calling CPU");
        Ok(())
    }
}
