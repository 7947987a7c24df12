//! The per-CPU IRQ stack (Linux `irq_stack_backing_store`, `irq_64.c`):
//! `IRQ_STACK_SIZE` bytes from the vmap area, guard pages around it,
//! non-executable, zero-filled (so `ps` can show its high-water mark).
//!
//! The switch onto it happens in the entry code (`arch/x86_64/entry.rs`),
//! decided by the per-CPU nest counter `irq_count`.

use core::sync::atomic::Ordering;

use crate::arch::percpu;
use crate::layout::IRQ_STACK_SIZE;
use crate::mm::vmalloc::{self, ONE_PAGE_GUARDS};

/// Allocate `cpu`'s IRQ stack and record its top in the per-CPU area.
pub fn init_cpu(cpu: usize) {
    let r = vmalloc::vmalloc_guarded(IRQ_STACK_SIZE, IRQ_STACK_SIZE, ONE_PAGE_GUARDS)
        .expect("out of memory for the IRQ stack");
    percpu::of(cpu).irq_stack_top.store(r.end(), Ordering::Release);
}

/// [bottom, top) of `cpu`'s IRQ stack, once allocated.
pub fn range(cpu: usize) -> Option<(u64, u64)> {
    let top = percpu::of(cpu).irq_stack_top.load(Ordering::Acquire);
    (top != 0).then(|| (top - IRQ_STACK_SIZE, top))
}

/// The interrupted RSP stored in the top word while a first-level handler runs.
pub fn saved_rsp(cpu: usize) -> Option<u64> {
    let (_, top) = range(cpu)?;
    // SAFETY: the top word of a mapped IRQ stack.
    Some(unsafe { ((top - 8) as *const u64).read_volatile() })
}

pub mod ktests {
    use core::sync::atomic::{AtomicU64, Ordering};

    use x86_64::structures::paging::PageTableFlags as F;

    use crate::arch::regs::Regs;
    use crate::arch::{apic, irq, percpu};
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::layout::PAGE_SIZE;
    use crate::mm::paging;

    /// The probe's vector, claimed the first time the ktest runs.
    static KTEST_VECTOR: spin::Once<u8> = spin::Once::new();

    pub static KTESTS: &[KTest] = &[
        KTest {
            name: "irq_first_level_switches_and_links_back",
            run: first_level_switches_and_links_back,
            oopses: false,
        },
        KTest { name: "irq_stack_guards_unmapped", run: irq_stack_guards_unmapped, oopses: false },
    ];
    static SEEN_COUNT: AtomicU64 = AtomicU64::new(u64::MAX);
    static SEEN_TOP_WORD: AtomicU64 = AtomicU64::new(0);
    static SEEN_FRAME: AtomicU64 = AtomicU64::new(0);
    static SEEN_RSP: AtomicU64 = AtomicU64::new(0);

    fn probe(regs: &mut Regs) {
        let cpu = percpu::this_cpu();
        SEEN_COUNT.store(cpu.irq_count.load(Ordering::SeqCst) as u64, Ordering::SeqCst);
        SEEN_TOP_WORD.store(super::saved_rsp(cpu.id()).unwrap_or(0), Ordering::SeqCst);
        SEEN_FRAME.store(regs as *const Regs as u64, Ordering::SeqCst);
        SEEN_RSP.store(crate::arch::cpu::stack_pointer(), Ordering::SeqCst);
    }

    /// irq_count is -1 in a thread and 0 in a first-level handler, which runs
    /// on the IRQ stack with the interrupted RSP (= its frame) in the top word.
    fn first_level_switches_and_links_back() -> KResult {
        let cpu = percpu::this_cpu();
        kcheck!(cpu.irq_count.load(Ordering::SeqCst) == -1, "irq_count in thread context is not -1");
        let vector = *KTEST_VECTOR.call_once(|| irq::claim(probe, "LAPIC  self-IPI ktest probe"));
        SEEN_COUNT.store(u64::MAX, Ordering::SeqCst);
        apic::send_self_ipi(vector);
        let arrived =
            crate::time::spin_until(crate::time::SPIN_WAIT_MS, || SEEN_COUNT.load(Ordering::SeqCst) != u64::MAX);
        kcheck!(arrived, "self-IPI never arrived");
        kcheck!(
            SEEN_COUNT.load(Ordering::SeqCst) == 0,
            "irq_count in the handler is {}",
            SEEN_COUNT.load(Ordering::SeqCst) as i64
        );
        let (bottom, top) = super::range(cpu.id()).ok_or("no IRQ stack")?;
        let rsp = SEEN_RSP.load(Ordering::SeqCst);
        kcheck!((bottom..top).contains(&rsp), "handler RSP {rsp:#x} not on the IRQ stack");
        let (word, frame) = (SEEN_TOP_WORD.load(Ordering::SeqCst), SEEN_FRAME.load(Ordering::SeqCst));
        kcheck!(word == frame, "top word {word:#x} is not the interrupted RSP {frame:#x}");
        let mine = crate::stacks::thread::find(crate::arch::cpu::stack_pointer()).map(|(s, _)| s.bottom);
        let frames = crate::stacks::thread::find(frame).map(|(s, _)| s.bottom);
        kcheck!(mine.is_some() && frames == mine, "frame {frame:#x} not on this thread's stack");
        kcheck!(cpu.irq_count.load(Ordering::SeqCst) == -1, "irq_count not back at -1");
        Ok(())
    }

    fn irq_stack_guards_unmapped() -> KResult {
        for cpu in percpu::online_cpus() {
            let (bottom, top) = super::range(cpu).ok_or("no IRQ stack")?;
            for va in (bottom..top).step_by(PAGE_SIZE as usize) {
                let f = paging::translate(va).map(|(_, f)| f);
                kcheck!(f.is_some_and(|f| f.contains(F::WRITABLE | F::NO_EXECUTE)), "IRQ stack page {va:#x}: {f:?}");
            }
            kcheck!(paging::translate(bottom - 8).is_none(), "guard below cpu {cpu}'s IRQ stack is mapped");
            kcheck!(paging::translate(top).is_none(), "guard above cpu {cpu}'s IRQ stack is mapped");
        }
        Ok(())
    }
}
