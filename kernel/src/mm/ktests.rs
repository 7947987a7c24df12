//! ktests of memory management on the real page tables.

use alloc::vec::Vec;
use x86_64::structures::paging::PageTableFlags as F;

use super::vmalloc;
use super::{paging, phys};
use crate::kcheck;
use crate::ktest::{KResult, KTest};
use crate::layout::{DIRECT_MAP_BASE, PAGE_SIZE, THREAD_SIZE};

pub static KTESTS: &[KTest] = &[
    KTest { name: "direct_map_covers_ram", run: direct_map_covers_ram, oopses: false },
    KTest { name: "frames_alloc_free", run: frames_alloc_free, oopses: false },
    KTest { name: "heap_alloc_free", run: heap_alloc_free, oopses: false },
    KTest { name: "vmap_map_touch_free", run: vmap_map_touch_free, oopses: false },
    KTest { name: "vmap_thread_size_aligned", run: vmap_thread_size_aligned, oopses: false },
];

fn direct_map_covers_ram() -> KResult {
    let frame = phys::alloc_frame().ok_or("no frame")?;
    let pa = frame.start_address().as_u64();
    let walked = paging::translate(DIRECT_MAP_BASE + pa).map(|(p, _)| p.as_u64());
    phys::free_frame(frame).map_err(|e| alloc::format!("{e:?}"))?;
    kcheck!(walked == Some(pa), "direct map of {pa:#x} walks to {walked:x?}");
    Ok(())
}

fn frames_alloc_free() -> KResult {
    let (_, before) = phys::counts();
    let frames: Vec<_> = (0..32).filter_map(|_| phys::alloc_frame()).collect();
    kcheck!(frames.len() == 32, "got {} of 32 frames", frames.len());
    let mut addrs: Vec<u64> = frames.iter().map(|f| f.start_address().as_u64()).collect();
    addrs.sort_unstable();
    addrs.dedup();
    kcheck!(addrs.len() == 32, "a frame was handed out twice");
    kcheck!(phys::counts().1 == before - 32, "free count did not drop by 32");
    for f in &frames {
        phys::free_frame(*f).map_err(|e| alloc::format!("{e:?}"))?;
    }
    kcheck!(phys::free_frame(frames[0]).is_err(), "double free was accepted");
    kcheck!(phys::counts().1 == before, "free count not restored");
    Ok(())
}

fn heap_alloc_free() -> KResult {
    let (_, used_before) = super::heap_usage();
    let v: Vec<u64> = (0..16384).collect();
    kcheck!(v.iter().sum::<u64>() == 16383 * 16384 / 2, "heap memory does not hold values");
    kcheck!(super::heap_usage().1 >= used_before + 16384 * 8, "heap usage did not grow");
    drop(v);
    kcheck!(super::heap_usage().1 == used_before, "heap usage not restored");
    Ok(())
}

/// Map, touch and free a guarded range; prove by walking the page tables
/// that the pages were mapped RW+NX, the guards never, and nothing after.
fn vmap_map_touch_free() -> KResult {
    const PAGES: u64 = 4;
    let guards = vmalloc::ONE_PAGE_GUARDS;
    // The first cycle may allocate page-table frames that stay; measure the second.
    let warm = vmalloc::vmalloc_guarded(PAGES * PAGE_SIZE, PAGE_SIZE, guards).map_err(|e| alloc::format!("{e}"))?;
    vmalloc::vfree(warm.start).map_err(|e| alloc::format!("{e}"))?;
    let (frames_before, stats_before) = (phys::counts().1, vmalloc::stats());

    let r = vmalloc::vmalloc_guarded(PAGES * PAGE_SIZE, PAGE_SIZE, guards).map_err(|e| alloc::format!("{e}"))?;
    kcheck!(phys::counts().1 == frames_before - PAGES, "mapping took the wrong number of frames");
    for va in (r.start..r.end()).step_by(PAGE_SIZE as usize) {
        let flags = paging::translate(va).map(|(_, f)| f);
        let want = F::PRESENT | F::WRITABLE | F::NO_EXECUTE;
        kcheck!(flags.is_some_and(|f| f.contains(want)), "{va:#x} mapped as {flags:?}");
    }
    for guard in [r.start - PAGE_SIZE, r.start - 8, r.end(), r.end() + PAGE_SIZE - 8] {
        kcheck!(paging::translate(guard).is_none(), "guard {guard:#x} is mapped");
        kcheck!(vmalloc::find(guard) == Some(r), "guard {guard:#x} not owned by its range");
    }
    let words = (r.size / 8) as usize;
    // SAFETY: [r.start, r.end()) was just mapped writable for us alone.
    let mem = unsafe { core::slice::from_raw_parts_mut(r.start as *mut u64, words) };
    kcheck!(mem.iter().all(|&w| w == 0), "fresh vmap memory is not zeroed");
    for (i, w) in mem.iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    let ok = mem.iter().enumerate().all(|(i, &w)| w == (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    kcheck!(ok, "vmap memory did not keep what was written");

    vmalloc::vfree(r.start).map_err(|e| alloc::format!("{e}"))?;
    for va in (r.start..r.end()).step_by(PAGE_SIZE as usize) {
        kcheck!(paging::translate(va).is_none(), "{va:#x} still mapped after vfree");
    }
    kcheck!(vmalloc::vfree(r.start).is_err(), "double vfree was accepted");
    kcheck!(phys::counts().1 == frames_before, "frames leaked by vfree");
    kcheck!(vmalloc::stats() == stats_before, "vmap bookkeeping not restored");
    Ok(())
}

/// Thread stacks need THREAD_SIZE alignment (so a stack never straddles the
/// boundary that masking would assume) and a guard page right below.
fn vmap_thread_size_aligned() -> KResult {
    let g = vmalloc::ONE_PAGE_GUARDS;
    let a = vmalloc::vmalloc_guarded(THREAD_SIZE, THREAD_SIZE, g).map_err(|e| alloc::format!("{e}"))?;
    let b = vmalloc::vmalloc_guarded(THREAD_SIZE, THREAD_SIZE, g).map_err(|e| alloc::format!("{e}"))?;
    let result = (|| {
        for r in [a, b] {
            kcheck!(r.start % THREAD_SIZE == 0, "stack at {:#x} not THREAD_SIZE-aligned", r.start);
            kcheck!(paging::translate(r.start - 8).is_none(), "guard below {:#x} mapped", r.start);
        }
        kcheck!(a.reserved_end() <= b.reserved_start() || b.reserved_end() <= a.reserved_start(), "two stacks overlap");
        Ok(())
    })();
    vmalloc::vfree(a.start).map_err(|e| alloc::format!("{e}"))?;
    vmalloc::vfree(b.start).map_err(|e| alloc::format!("{e}"))?;
    result
}
