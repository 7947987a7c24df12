//! The per-CPU exception (IST) stacks in the cpu entry area.
//!
//! Layout, sizes and names come from `layout::ESTACKS`; this module maps the
//! stack pages (guards stay unmapped, DB2 has no pages at all) and reads the
//! live state back for the `stacks` command.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::percpu;
use crate::layout::{estack_range, EStack, Ist, DB_STACK_OFFSET, ESTACKS, MAX_CPUS, PAGE_SIZE, PF_STACK_OFFSET};
use crate::mm::paging;

/// Per CPU: its exception stacks are mapped (the cpu entry area of a CPU
/// that never came up has no pages, and must not be walked).
static MAPPED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Whether `cpu`'s exception stacks exist.
pub fn mapped(cpu: usize) -> bool {
    cpu < MAX_CPUS && MAPPED[cpu].load(Ordering::Acquire)
}

/// Map `cpu`'s exception stacks (zeroed, RW, NX); returns each IST's top for the TSS.
pub fn init_cpu(cpu: usize) -> Vec<(Ist, u64)> {
    let mut tops = Vec::new();
    for d in &ESTACKS {
        let (bottom, top) = estack_range(cpu, d.kind);
        paging::map_new_pages(bottom, d.size, paging::KERNEL_DATA).expect("out of memory mapping exception stacks");
        if let Some(ist) = d.ist {
            tops.push((ist, top));
        }
    }
    MAPPED[cpu].store(true, Ordering::Release);
    tops
}

/// One row of the `stacks` table, read from the live TSS and page tables.
pub struct LiveStack {
    pub name: &'static str,
    pub bottom: u64,
    pub top: u64,
    /// The unmapped page below, or `None` if that page is (wrongly) mapped.
    pub guard: Option<(u64, u64)>,
    /// How the CPU gets there: "IST1", or "IST3-1" for DB1 (one shift).
    pub via: alloc::string::String,
}

/// Bound of the walk below: far more than any stack, so a missing guard
/// shows as a too-large stack instead of a walk through the whole map.
const WALK_LIMIT_PAGES: u64 = 32;

/// Walk down from `top` over mapped pages: the stack's real extent, and the
/// unmapped guard page below it (None if that page is mapped).
pub fn live_extent(top: u64) -> (u64, Option<(u64, u64)>) {
    let mut bottom = top;
    while top - bottom < WALK_LIMIT_PAGES * PAGE_SIZE && paging::translate(bottom - PAGE_SIZE).is_some() {
        bottom -= PAGE_SIZE;
    }
    let guard_mapped = paging::translate(bottom - PAGE_SIZE).is_some();
    (bottom, (!guard_mapped).then_some((bottom - PAGE_SIZE, bottom - 1)))
}

/// The rows of `cpu`'s exception stacks; the #PF stacks only once dynamic
/// thread stacks are armed (before, no gate leads there).
pub fn live_rows(cpu: usize) -> Vec<LiveStack> {
    let area = percpu::of(cpu);
    let shifted = |ist: Ist, n: u64| {
        let offset = if ist == Ist::PF { PF_STACK_OFFSET } else { DB_STACK_OFFSET };
        (area.ist(ist) - n * offset, alloc::format!("IST{}-{n}", ist as u8))
    };
    ESTACKS
        .iter()
        .filter(|d| !d.kind.dynamic_only() || crate::stacks::dynamic::armed())
        .map(|d| {
            let (top, via) = match (d.ist, d.kind) {
                (Some(ist), _) => (area.ist(ist), alloc::format!("IST{}", ist as u8)),
                (None, EStack::DB1) => shifted(Ist::DB, 1),
                (None, EStack::DB2) => shifted(Ist::DB, 2),
                (None, EStack::PF1) => shifted(Ist::PF, 1),
                (None, _) => shifted(Ist::PF, 2),
            };
            let (bottom, guard) = live_extent(top);
            LiveStack { name: d.name, bottom, top, guard, via }
        })
        .collect()
}

pub mod ktests {
    use core::sync::atomic::Ordering;

    use x86_64::structures::paging::PageTableFlags as F;

    use crate::arch::vectors::*;
    use crate::arch::{debug, idt, mce, nmi, percpu};
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::layout::{cea_base, estack_range, EStack, Ist, CEA_PER_CPU_SIZE, ESTACKS, MAX_CPUS, PAGE_SIZE};
    use crate::mm::paging;

    pub static KTESTS: &[KTest] = &[
        KTest { name: "ist_slots_point_at_stack_tops", run: ist_slots_point_at_stack_tops, oopses: false },
        KTest { name: "gates_name_their_ist", run: gates_name_their_ist, oopses: false },
        KTest { name: "exception_gates_present", run: exception_gates_present, oopses: false },
        KTest { name: "cea_of_absent_cpu_is_no_stack", run: cea_of_absent_cpu_is_no_stack, oopses: false },
        KTest { name: "estack_pages_nx_guards_unmapped", run: stack_pages_nx_and_guards_unmapped, oopses: false },
        KTest { name: "int3_runs_on_db_stack", run: int3_runs_on_db_stack, oopses: false },
        KTest { name: "nmi_runs_on_nmi_stack", run: nmi_runs_on_nmi_stack, oopses: false },
        KTest { name: "mce_runs_on_mce_stack", run: mce_runs_on_mce_stack, oopses: false },
        KTest { name: "handlers_print_while_console_held", run: handlers_print_while_console_held, oopses: false },
    ];

    fn in_stack(addr: u64, kind: EStack) -> bool {
        let (bottom, top) = estack_range(percpu::this_cpu().id(), kind);
        (bottom..top).contains(&addr)
    }

    fn ist_slots_point_at_stack_tops() -> KResult {
        for cpu in percpu::online_cpus() {
            for d in ESTACKS.iter().filter(|d| d.ist.is_some()) {
                let ist = d.ist.unwrap();
                let live = percpu::of(cpu).ist(ist);
                let want = estack_range(cpu, d.kind).1;
                kcheck!(live == want, "cpu {cpu} IST{} = {live:#x}, want top of {} {want:#x}", ist as u8, d.name);
            }
        }
        Ok(())
    }

    fn gates_name_their_ist() -> KResult {
        for (vector, want) in [
            (X86_TRAP_DB, Ist::DB as u8),
            (X86_TRAP_NMI, Ist::NMI as u8),
            (X86_TRAP_BP, Ist::DB as u8),
            (X86_TRAP_DF, Ist::DF as u8),
            (X86_TRAP_MC, Ist::MCE as u8),
            (X86_TRAP_GP, 0),
            // #PF has a stack of its own once dynamic thread stacks are armed.
            (X86_TRAP_PF, if crate::stacks::dynamic::armed() { Ist::PF as u8 } else { 0 }),
        ] {
            kcheck!(
                idt::gate_ist(vector) == want,
                "vector {vector} gate has IST {}, want {want}",
                idt::gate_ist(vector)
            );
        }
        Ok(())
    }

    /// The cpu entry area of a CPU that never came up is on no stack: an
    /// unwinder must not walk its unmapped pages.
    fn cea_of_absent_cpu_is_no_stack() -> KResult {
        let absent = MAX_CPUS - 1;
        kcheck!(!percpu::is_online(absent), "CPU {absent} is online");
        let (bottom, top) = estack_range(absent, EStack::DF);
        kcheck!(paging::translate(bottom).is_none(), "CPU {absent}'s #DF stack is mapped");
        let on = crate::stacks::info::stack_of(top - 8).map(|s| s.name());
        kcheck!(on.is_none(), "an address in CPU {absent}'s absent #DF stack is said to be on {on:?}");
        Ok(())
    }

    /// Every exception gate is present (a survived `doublefault` must give
    /// #DE's back: the IDT is shared by every CPU).
    fn exception_gates_present() -> KResult {
        for vector in 0..NR_EXCEPTIONS as u8 {
            kcheck!(idt::gate_present(vector), "exception {vector}'s gate is not present");
        }
        Ok(())
    }

    /// Walk the page tables over each CPU's whole entry area: stack pages
    /// mapped RW+NX, every other page (guards, the DB2 hole) unmapped.
    fn stack_pages_nx_and_guards_unmapped() -> KResult {
        for cpu in percpu::online_cpus() {
            let base = cea_base(cpu);
            for va in (base..base + CEA_PER_CPU_SIZE).step_by(PAGE_SIZE as usize) {
                let on_stack = ESTACKS.iter().any(|d| {
                    let (b, t) = estack_range(cpu, d.kind);
                    (b..t).contains(&va)
                });
                let flags = paging::translate(va).map(|(_, f)| f);
                if on_stack {
                    kcheck!(
                        flags.is_some_and(|f| f.contains(F::PRESENT | F::WRITABLE | F::NO_EXECUTE)),
                        "stack page {va:#x} mapped as {flags:?}"
                    );
                } else {
                    kcheck!(flags.is_none(), "guard page {va:#x} is mapped");
                }
            }
        }
        Ok(())
    }

    fn int3_runs_on_db_stack() -> KResult {
        let cpu = percpu::this_cpu();
        debug::int3();
        let frame = cpu.handler_rsp[X86_TRAP_BP as usize].load(Ordering::SeqCst);
        kcheck!(in_stack(frame, EStack::DB), "#BP frame {frame:#x} not on the #DB stack");
        let top = estack_range(cpu.id(), EStack::DB).1;
        kcheck!(cpu.ist(Ist::DB) == top, "IST[DB] not restored after #BP");
        Ok(())
    }

    fn nmi_runs_on_nmi_stack() -> KResult {
        kcheck!(nmi::self_nmi_quiet(), "no NMI delivered");
        let frame = percpu::this_cpu().handler_rsp[X86_TRAP_NMI as usize].load(Ordering::SeqCst);
        kcheck!(in_stack(frame, EStack::NMI), "NMI frame {frame:#x} not on the NMI stack");
        Ok(())
    }

    /// A handler that prints must not deadlock when it interrupted a print on
    /// its own CPU (the bug an injected #MC during `mce wait` once hit).
    fn handlers_print_while_console_held() -> KResult {
        let cpu = percpu::this_cpu();
        cpu.handler_rsp[X86_TRAP_BP as usize].store(0, Ordering::SeqCst);
        let mc = crate::arch::mce::MCE_COUNT.of(cpu.id()).load(Ordering::SeqCst);
        crate::console::while_holding_console(|| {
            debug::int3();
            mce::int18();
        });
        kcheck!(crate::arch::mce::MCE_COUNT.of(cpu.id()).load(Ordering::SeqCst) == mc + 1, "#MC handler did not run");
        kcheck!(cpu.handler_rsp[X86_TRAP_BP as usize].load(Ordering::SeqCst) != 0, "#BP handler did not run");
        kcheck!(!crate::console::console_held(), "console lock left held");
        Ok(())
    }

    fn mce_runs_on_mce_stack() -> KResult {
        kcheck!(mce::banks_enabled().is_some(), "no MCA (QEMU should run with -cpu max)");
        let cpu = percpu::this_cpu();
        let before = crate::arch::mce::MCE_COUNT.of(cpu.id()).load(Ordering::SeqCst);
        mce::int18();
        kcheck!(
            crate::arch::mce::MCE_COUNT.of(cpu.id()).load(Ordering::SeqCst) == before + 1,
            "#MC handler did not run"
        );
        let frame = cpu.handler_rsp[X86_TRAP_MC as usize].load(Ordering::SeqCst);
        kcheck!(in_stack(frame, EStack::MCE), "#MC frame {frame:#x} not on the #MC stack");
        Ok(())
    }
}
