//! What happens between the bootloader's jump and the shell prompt.

use bootloader_api::BootInfo;
use spin::Once;

use crate::drivers::fw_cfg;
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::{mm, println, shell};

/// Facts from the bootloader that later code and ktests consult.
#[derive(Clone, Copy, Debug)]
pub struct BootFacts {
    /// Where the whole kernel ELF file sits in memory.
    pub kernel_file: (u64, u64),
    /// Offset between link and run-time addresses (0 for our static kernel).
    pub kernel_image_offset: u64,
    pub rsdp: Option<u64>,
}

static FACTS: Once<BootFacts> = Once::new();

pub fn facts() -> &'static BootFacts {
    FACTS.get().expect("boot facts recorded first thing in start()")
}

pub fn start(boot_info: &'static mut BootInfo) -> ! {
    crate::console::init();
    let stack_bottom = boot_info.kernel_stack_bottom;
    FACTS.call_once(|| BootFacts {
        kernel_file: (boot_info.kernel_addr, boot_info.kernel_len),
        kernel_image_offset: boot_info.kernel_image_offset,
        rsdp: boot_info.rsdp_addr.into_option(),
    });
    crate::stacks::info::set_boot_stack(stack_bottom, stack_bottom + boot_info.kernel_stack_len);
    println!("tristack {} (x86_64, {}) booting", env!("CARGO_PKG_VERSION"), env!("TRISTACK_BUILD"));
    mm::init(boot_info);
    load_symbols();
    init_cpu(0);
    let (usable, free) = mm::phys::counts();
    println!(
        "Memory: {}K/{}K available, heap {}K, vmap area {:#x}",
        free * 4,
        usable * 4,
        mm::HEAP_SIZE / 1024,
        crate::layout::VMAP_BASE
    );
    println!(
        "CPU 0: GDT/TSS/IDT loaded, IST stacks in the cpu entry area at {:#x}, machine checks {}",
        crate::layout::cea_base(0),
        match crate::arch::mce::banks_enabled() {
            Some(n) => alloc::format!("enabled ({n} banks)"),
            None => "not supported by this CPU".into(),
        }
    );
    println!("CPU 0: kernel/user separation: {}", crate::arch::cpu::protections());

    let cal = crate::arch::apic::calibrate_timer();
    crate::time::set_tsc_per_ms(cal.tsc_per_ms);
    println!("Timer: local APIC {} counts/ms, TSC {} kHz, HZ={}", cal.apic_per_ms, cal.tsc_per_ms, crate::time::HZ);
    // Off the bootloader's stack for good: the rest runs as pid 1 on a
    // THREAD_SIZE stack, with an idle task behind it.
    crate::sched::start("init", init_main)
}

/// The kernel's own symbols, from the ELF file the bootloader left in memory.
fn load_symbols() {
    let (pa, len) = facts().kernel_file;
    // SAFETY: the bootloader reports the ELF file's physical location; it is
    // not usable memory (never handed out), and the direct map covers it.
    // Parsing copies what it keeps, so the slice need not outlive this call.
    let elf = unsafe { core::slice::from_raw_parts(mm::phys::phys_to_virt(pa), len as usize) };
    match crate::debug::symbols::init(elf) {
        Ok(n) => println!("Symbols: {n} functions from the kernel ELF ({len} bytes at {pa:#x})"),
        Err(why) => println!("Symbols: none ({why}); traces show raw addresses"),
    }
}

/// ISA IRQ lines tristack routes through the I/O APIC.
const PIT_IRQ: u8 = 0;
const COM1_IRQ: u8 = 4;

fn pit_irq(_: &mut crate::arch::regs::Regs) {}

fn com1_irq(_: &mut crate::arch::regs::Regs) {
    crate::tty::receive_irq();
}

/// The ACPI MADT: processors and I/O APICs.
fn read_madt() -> Option<crate::drivers::acpi::Madt> {
    let Some(rsdp) = facts().rsdp else {
        println!("ACPI: no RSDP from the bootloader; one CPU, serial input stays polled");
        return None;
    };
    match crate::drivers::acpi::madt(rsdp) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("ACPI: cannot read the MADT ({e}); one CPU, serial input stays polled");
            None
        }
    }
}

/// Route the PIT and COM1's receive interrupt through the first I/O APIC
/// (to the boot CPU); the shell's input then arrives by interrupt.
fn route_device_interrupts(madt: &crate::drivers::acpi::Madt) {
    use crate::arch::{apic, ioapic, irq};
    let Some(first) = madt.io_apics.first() else {
        println!("IO-APIC: none in the MADT; serial input stays polled");
        return;
    };
    let va = crate::mm::vmalloc::ioremap(first.address, crate::layout::PAGE_SIZE).expect("cannot map the I/O APIC");
    let inputs = ioapic::init(first, va);
    let me = apic::id();
    for (irq_line, handler, name) in
        [(PIT_IRQ, pit_irq as irq::Handler, "timer (PIT)"), (COM1_IRQ, com1_irq as irq::Handler, "ttyS0")]
    {
        let route = madt.isa_route(irq_line);
        let vector = ioapic::isa_irq_vector(irq_line);
        let label =
            alloc::format!("IO-APIC {:>3}-{}  {name}", route.gsi, if route.level { "fasteoi" } else { "edge   " });
        irq::register(vector, handler, alloc::boxed::Box::leak(label.into_boxed_str()));
        ioapic::route(route, vector, me);
        println!("IO-APIC: ISA IRQ {irq_line} -> GSI {} -> vector {vector:#04x} ({name})", route.gsi);
    }
    println!("IO-APIC: id {} at {:#x}, {inputs} inputs, GSI base {}", first.id, first.address, first.gsi_base);
    crate::tty::set_irq_driven();
}

/// pid 1: start the tick, run the command line, then the shell.
fn init_main(_: u64) -> i64 {
    crate::ktest::hand_down(ktests::KTESTS);
    crate::softirq::open(crate::softirq::Softirq::TIMER, crate::sched::timer_softirq);
    crate::smp::init();
    crate::debug::nmi_backtrace::init();
    crate::demos::init();
    shell::init();
    crate::sched::spawn_on("ksoftirqd/0", crate::softirq::ksoftirqd, 0, crate::sched::Placement::Pinned(0))
        .expect("ksoftirqd stack");
    let madt = read_madt();
    if let Some(madt) = &madt {
        route_device_interrupts(madt);
    }
    crate::arch::apic::start_periodic_timer(crate::time::HZ);
    match &madt {
        Some(madt) => crate::smp::bringup::boot_secondary_cpus(madt, ap_main),
        None => println!("smp: no MADT; running on CPU 0 only"),
    }
    let cmdline = fw_cfg::read_file(fw_cfg::CMDLINE_FILE);
    match cmdline.as_deref() {
        None => println!("Command line: (none)"),
        Some(bytes) => match core::str::from_utf8(bytes) {
            Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') => {
                println!("Command line: {s}")
            }
            _ => println!("Command line: ({} bytes, not printable text)", bytes.len()),
        },
    }
    if let Some(bytes) = cmdline {
        if !shell::run_command_line(&bytes) {
            println!("tristack: the command line failed; ending the boot with failure");
            exit(ExitCode::Failure);
        }
    }
    shell::interactive()
}

pub mod ktests {
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::layout::{region_of, KERNEL_IMAGE_BASE};

    pub static KTESTS: &[KTest] =
        &[KTest { name: "kernel_runs_at_link_address", run: runs_at_link_address, oopses: false }];

    /// The kernel is a static executable: the bootloader loaded it at its link
    /// address, so code addresses are the ELF's (nm/addr2line/gdb need no offset).
    fn runs_at_link_address() -> KResult {
        let offset = super::facts().kernel_image_offset;
        kcheck!(offset == 0, "kernel image offset is {offset:#x}, not 0");
        let here = runs_at_link_address as fn() -> KResult as usize as u64;
        kcheck!(here >= KERNEL_IMAGE_BASE, "code at {here:#x}, below {KERNEL_IMAGE_BASE:#x}");
        kcheck!(region_of(here).map(|r| r.name) == Some("kernel image"), "{here:#x} not in image");
        Ok(())
    }
}

/// Bring up this CPU's exception handling: per-CPU area (GS base), its IST
/// stacks and IRQ stack, GDT and TSS, the shared IDT, the local APIC and
/// machine checks.
/// The boot CPU runs it first; each AP runs it for itself (`ap_main`).
pub fn init_cpu(cpu: usize) {
    use crate::arch::entry::syscall;
    use crate::arch::{apic, cpu as x86, gdt, idt, mce, percpu, vectors};
    percpu::init(cpu);
    if cpu == 0 {
        // `mcount` may read GS from here on (APs have it from their trampoline).
        crate::arch::stackleak::init();
    }
    let tops = crate::stacks::exception::init_cpu(cpu);
    crate::stacks::irq::init_cpu(cpu);
    crate::stacks::extra::init_cpu(cpu);
    gdt::init(cpu, &tops);
    if cpu == 0 {
        crate::arch::entry::init_idt();
        crate::drivers::pic::remap_and_mask(vectors::PIC_VECTOR_BASE);
    }
    idt::load();
    let apic_va = apic::mapped().unwrap_or_else(|| {
        crate::mm::vmalloc::ioremap(apic::base_pa(), crate::layout::PAGE_SIZE).expect("cannot map the local APIC")
    });
    apic::init(apic_va);
    percpu::this_cpu().apic_id.store(apic::id(), core::sync::atomic::Ordering::Relaxed);
    mce::init();
    syscall::init();
    x86::enable_protections();
}

/// What each AP runs once it is in 64-bit mode on its idle stack: the
/// same bring-up as the boot CPU's, then its own tick, ksoftirqd and idle.
fn ap_main(cpu: usize) -> ! {
    init_cpu(cpu);
    crate::smp::bringup::secondary_start(cpu)
}
