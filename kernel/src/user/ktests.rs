//! ktests of user memory access against a concurrent `munmap`.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use x86_64::instructions::interrupts;
use x86_64::structures::paging::PageTableFlags;

use crate::arch::debug::{self, DebugEvent, DebugKind};
use crate::arch::percpu;
use crate::arch::regs::Regs;
use crate::kcheck;
use crate::ktest::{KResult, KTest};
use crate::layout::PAGE_SIZE;
use crate::mm::address_space::AddressSpace;
use crate::mm::phys;
use crate::sched::{join, spawn_on, Placement};
use crate::time::spin_until;

pub static KTESTS: &[KTest] =
    &[KTest { name: "munmap_waits_for_a_copy_in_flight", run: munmap_waits_for_a_copy_in_flight, oopses: false }];

/// The user address the copy goes to.
const VA: u64 = 0x7000_0000;
/// What the copy writes: one page of it.
const BYTE: u8 = 0x5a;
static SOURCE: [u8; PAGE_SIZE as usize] = [BYTE; PAGE_SIZE as usize];
/// The breakpoint slot the copier arms on its own CPU (the demos' slot).
const SLOT: u8 = 0;

/// CPU of the copier + 1 while its breakpoint is armed (0: none).
static COPIER_CPU: AtomicUsize = AtomicUsize::new(0);
/// The copier stopped inside the copy (its first read of the source).
static IN_COPY: AtomicBool = AtomicBool::new(false);
/// `munmap` returned the page's frame.
static UNMAPPED: AtomicBool = AtomicBool::new(false);

/// The copier's #DB on its first read of `SOURCE`: the copy has started.
/// Hold it there until the other CPU's unmap has returned — or, if the
/// unmap waits for the copy as it must, for 50 ms.
fn db_hook(_: &mut Regs, event: &DebugEvent) -> bool {
    let cpu = percpu::current_cpu_id() + 1;
    if event.kind != DebugKind::Db || event.slot != Some(SLOT) || COPIER_CPU.load(Ordering::SeqCst) != cpu {
        return false;
    }
    IN_COPY.store(true, Ordering::SeqCst);
    spin_until(50, || UNMAPPED.load(Ordering::SeqCst));
    true
}

/// Copy one page into the address space at `arg`, interrupts off, with a
/// breakpoint on the source so the copy stops after its first read.
fn copier(arg: u64) -> i64 {
    // SAFETY: the ktest keeps the address space alive until it has joined us.
    let mm = unsafe { &*(arg as *const AddressSpace) };
    interrupts::disable();
    COPIER_CPU.store(percpu::current_cpu_id() + 1, Ordering::SeqCst);
    debug::arm_access(SLOT, SOURCE.as_ptr() as u64);
    let copied = mm.write(VA, &SOURCE);
    debug::disarm(SLOT);
    COPIER_CPU.store(0, Ordering::SeqCst);
    interrupts::enable();
    if copied.is_ok() {
        0
    } else {
        1
    }
}

fn bytes_written(frame: u64) -> usize {
    // SAFETY: a frame `unmap` handed back and the ktest has not freed,
    // read through the direct map.
    let page = unsafe { core::slice::from_raw_parts(phys::phys_to_virt(frame), PAGE_SIZE as usize) };
    page.iter().filter(|&&b| b == BYTE).count()
}

/// `munmap` on one CPU while another CPU's `copy_to_user` is between its
/// page lookup and the end of its copy (Linux pins the pages for the copy,
/// `get_user_pages`). The unmap must wait for the copy: no byte may land
/// in a frame after `unmap` has handed it back to be freed and reused.
fn munmap_waits_for_a_copy_in_flight() -> KResult {
    let me = percpu::current_cpu_id();
    let Some(other) = percpu::online_cpus().find(|&c| c != me) else {
        crate::println!("ktest: one CPU online; the munmap-vs-copy race needs two (skipped)");
        return Ok(());
    };
    debug::register_debug_hook(db_hook);
    let mm = AddressSpace::new().map_err(|e| alloc::format!("{e:?}"))?;
    mm.map_zeroed(VA, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE).map_err(|e| alloc::format!("{e:?}"))?;
    IN_COPY.store(false, Ordering::SeqCst);
    UNMAPPED.store(false, Ordering::SeqCst);
    let arg = &mm as *const AddressSpace as u64;
    let pid = spawn_on("ktest-copier", copier, arg, Placement::Pinned(other)).map_err(|e| alloc::format!("{e}"))?;
    let stopped = spin_until(5_000, || IN_COPY.load(Ordering::SeqCst));
    let frames = mm.unmap(VA, VA + PAGE_SIZE);
    let at_unmap = frames.first().map(|f| bytes_written(f.start_address().as_u64()));
    UNMAPPED.store(true, Ordering::SeqCst);
    let ended = join(pid);
    let after = frames.first().map(|f| bytes_written(f.start_address().as_u64()));
    AddressSpace::free_frames(frames);
    drop(mm);
    kcheck!(stopped, "the copier never reached its copy");
    kcheck!(ended == Ok(crate::sched::Ended::Exited(0)), "copier ended {ended:?}");
    kcheck!(at_unmap.is_some(), "unmap returned no frame");
    kcheck!(
        at_unmap == after,
        "the copy wrote into the frame after munmap returned it: {at_unmap:?} bytes at the unmap, {after:?} after"
    );
    Ok(())
}
