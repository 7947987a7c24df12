//! Thread stacks under test: layout, magic and guards, the per-CPU cache
//! and what a reused stack holds.

use x86_64::structures::paging::PageTableFlags as F;

use super::*;
use crate::kcheck;
use crate::ktest::{KResult, KTest};
use crate::mm::paging;

pub static KTESTS: &[KTest] = &[
    KTest { name: "thread_stack_layout_magic_guards", run: layout_magic_alignment_and_guards, oopses: false },
    KTest { name: "thread_stack_cache_reuse", run: cache_reuses_two_then_frees_to_vmap, oopses: false },
    KTest { name: "thread_stack_zeroed_on_reuse", run: reused_stack_is_zeroed_with_magic, oopses: false },
    KTest {
        name: "thread_stack_scanned_reuse_clears_what_was_used",
        run: scanned_reuse_clears_what_was_used,
        oopses: false,
    },
    KTest { name: "guard_below_every_thread_stack", run: guard_below_every_thread_stack, oopses: false },
];

/// Two frees fill the cache, two allocations take the same stacks back,
/// a third free goes back to the vmap area (unmapped).
fn cache_reuses_two_then_frees_to_vmap() -> KResult {
    drain_cache();
    let s: Vec<ThreadStack> = (0..3).map(|_| alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
    let mut bottoms: Vec<u64> = s.iter().map(|t| t.bottom).collect();
    free(s[0]);
    free(s[1]);
    kcheck!(cached() == 2, "cache holds {} stacks, want 2", cached());
    free(s[2]);
    kcheck!(paging::translate(s[2].bottom).is_none(), "third freed stack still mapped");
    let again: Vec<ThreadStack> =
        (0..2).map(|_| alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
    let mut got: Vec<u64> = again.iter().map(|t| t.bottom).collect();
    got.sort_unstable();
    bottoms.truncate(2);
    bottoms.sort_unstable();
    kcheck!(got == bottoms, "reused {got:x?}, cached were {bottoms:x?}");
    again.into_iter().for_each(free);
    drain_cache();
    Ok(())
}

/// A stack freed after the reaping scan (`free_scanned`) is cleared only
/// above its zero part on reuse: what the last thread wrote — from its
/// deepest point, 1 KiB above the bottom, to the top — must be gone, and
/// the magic back.
fn scanned_reuse_clears_what_was_used() -> KResult {
    drain_cache();
    let s = alloc().map_err(|e| alloc::format!("{e}"))?;
    let deepest = s.bottom + 8 + 1024;
    // SAFETY: our own fresh stack, written above the magic only.
    unsafe { core::ptr::write_bytes(deepest as *mut u8, 0x5a, (s.top() - deepest) as usize) };
    let scan = s.scan();
    kcheck!(scan.zero == 1024, "the scan found {} zero bytes, want 1024", scan.zero);
    free_scanned(s, scan);
    let t = alloc().map_err(|e| alloc::format!("{e}"))?;
    kcheck!(t.bottom == s.bottom, "cache not used");
    kcheck!(t.end_magic_ok(), "no end magic");
    kcheck!(t.not_used() == THREAD_SIZE - 8, "reused stack not cleared: {} bytes clean", t.not_used());
    free(t);
    drain_cache();
    Ok(())
}

fn reused_stack_is_zeroed_with_magic() -> KResult {
    drain_cache();
    let s = alloc().map_err(|e| alloc::format!("{e}"))?;
    // SAFETY: our own fresh stack.
    unsafe { core::ptr::write_bytes((s.bottom + 8) as *mut u8, 0xa5, (THREAD_SIZE - 8) as usize) };
    free(s);
    let t = alloc().map_err(|e| alloc::format!("{e}"))?;
    kcheck!(t.bottom == s.bottom, "cache not used");
    kcheck!(t.end_magic_ok(), "no end magic");
    kcheck!(t.not_used() == THREAD_SIZE - 8, "reused stack not zeroed: {} bytes clean", t.not_used());
    free(t);
    drain_cache();
    Ok(())
}

fn layout_magic_alignment_and_guards() -> KResult {
    let s = alloc().map_err(|e| alloc::format!("{e}"))?;
    let result = (|| {
        kcheck!(s.bottom % THREAD_SIZE == 0, "stack {:#x} not THREAD_SIZE-aligned", s.bottom);
        // SAFETY: mapped stack bottom.
        let w0 = unsafe { (s.bottom as *const u64).read() };
        kcheck!(w0 == STACK_END_MAGIC, "lowest word {w0:#x}");
        kcheck!(find(s.bottom - 8) == Some((s, true)), "guard not recognised");
        kcheck!(find(s.top() - 8) == Some((s, false)), "stack not recognised");
        Ok(())
    })();
    free(s);
    result
}

/// Every live thread stack: mapped RW+NX, guard page below unmapped,
/// the page above unmapped too (the gap).
fn guard_below_every_thread_stack() -> KResult {
    let live: Vec<ThreadStack> =
        LIVE.iter().map(|s| s.load(Ordering::Acquire)).filter(|&w| w != 0).map(ThreadStack::unpack).collect();
    kcheck!(live.len() >= 2, "expected idle and init at least");
    for t in live {
        let (b, top) = (t.bottom, t.top);
        let flags = paging::translate(b).map(|(_, f)| f);
        kcheck!(flags.is_some_and(|f| f.contains(F::WRITABLE | F::NO_EXECUTE)), "stack at {b:#x} mapped as {flags:?}");
        kcheck!(paging::translate(b - 8).is_none(), "guard below the stack at {b:#x} is mapped");
        kcheck!(paging::translate(top).is_none(), "gap above the stack at {b:#x} is mapped");
    }
    Ok(())
}
