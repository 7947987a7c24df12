//! `irqs`: `/proc/interrupts`, per vector and CPU, then the stack facts
//! Linux does not show.

use super::*;

/// `/proc/interrupts`, per vector, then the stack facts Linux does not show.
pub fn irqs(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    let cpus: Vec<usize> = percpu::online_cpus().collect();
    let mut head = alloc::string::String::from("     ");
    for c in &cpus {
        head.push_str(&alloc::format!("      CPU{c:<4}"));
    }
    println!("{head}");
    let row = |label: &str, count: &dyn Fn(&percpu::PerCpu) -> u64, what: &str| {
        let mut line = alloc::format!("{label:>4}:");
        for &c in &cpus {
            line.push_str(&alloc::format!(" {:>10} ", count(percpu::of(c))));
        }
        println!("{line}  {what}");
    };
    for v in FIRST_EXTERNAL_VECTOR as usize..256 {
        let total: u64 =
            cpus.iter().map(|&c| crate::arch::entry::irq::IRQ_COUNTS.of(c)[v].load(Ordering::Relaxed)).sum();
        // These vectors get Linux's named rows below.
        let special = [LOCAL_TIMER_VECTOR, SPURIOUS_APIC_VECTOR, RESCHEDULE_VECTOR, CALL_FUNCTION_SINGLE_VECTOR]
            .contains(&(v as u8));
        if total > 0 && !special {
            let name = irq::name(v as u8).unwrap_or("unregistered");
            row(
                &alloc::format!("{v:#04x}"),
                &|p| crate::arch::entry::irq::IRQ_COUNTS.of(p.id())[v].load(Ordering::Relaxed),
                name,
            );
        }
    }
    row("NMI", &|p| crate::arch::nmi::NMI_COUNT.of(p.id()).load(Ordering::Relaxed), "Non-maskable interrupts");
    row(
        "LOC",
        &|p| crate::arch::entry::irq::IRQ_COUNTS.of(p.id())[LOCAL_TIMER_VECTOR as usize].load(Ordering::Relaxed),
        "Local timer interrupts",
    );
    row(
        "SPU",
        &|p| crate::arch::entry::irq::IRQ_COUNTS.of(p.id())[SPURIOUS_APIC_VECTOR as usize].load(Ordering::Relaxed),
        "Spurious interrupts",
    );
    row(
        "RES",
        &|p| crate::arch::entry::irq::IRQ_COUNTS.of(p.id())[RESCHEDULE_VECTOR as usize].load(Ordering::Relaxed),
        "Rescheduling interrupts",
    );
    row(
        "CAL",
        &|p| {
            crate::arch::entry::irq::IRQ_COUNTS.of(p.id())[CALL_FUNCTION_SINGLE_VECTOR as usize].load(Ordering::Relaxed)
        },
        "Function call interrupts",
    );
    row("TLB", &|p| crate::smp::tlb::tlb_shootdowns(p.id()), "TLB shootdowns");
    row("MCE", &|p| crate::arch::mce::MCE_COUNT.of(p.id()).load(Ordering::Relaxed), "Machine check exceptions");
    for &c in &cpus {
        let p = percpu::of(c);
        println!(
            "cpu {c}: irq_count {}, deepest nesting {}, softirq rounds deferred to ksoftirqd {}",
            p.irq_count.load(Ordering::Relaxed),
            crate::arch::entry::irq::IRQ_MAX_NEST.of(p.id()).load(Ordering::Relaxed),
            softirq::DEFERRED_ROUNDS[c].load(Ordering::Relaxed)
        );
    }
    Ok(())
}
