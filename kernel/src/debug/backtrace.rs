//! Walking the frame-pointer chain of one stack.
//!
//! Every function built with `-C force-frame-pointers=yes` starts with
//! `push rbp; mov rbp, rsp`, so `[rbp]` is the caller's RBP and `[rbp + 8]` the
//! return address into the caller. This walk trusts nothing: every frame must
//! lie inside the given stack, be 8-byte aligned and sit above the previous
//! one, so a corrupt chain ends the walk instead of faulting or looping.
//! Pure logic over a `read` callback, so the host tests it on fake stacks.

/// Why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkEnd {
    /// RBP was 0: the outermost frame (entry code clears RBP).
    Outermost,
    /// A frame pointer left the stack's bounds or was misaligned.
    BadFramePointer(u64),
    /// A frame pointer did not move towards the top of the stack (a loop).
    NotAscending(u64),
    /// `max_frames` were printed.
    TooDeep,
}

/// Walk from `rbp` within the stack `[bottom, top)`, calling `emit` with each
/// return address. `read(addr)` loads the word at `addr` (only called with
/// aligned addresses inside the bounds).
pub fn walk_frame_pointers(
    mut rbp: u64,
    bottom: u64,
    top: u64,
    max_frames: usize,
    read: impl Fn(u64) -> u64,
    mut emit: impl FnMut(u64),
) -> WalkEnd {
    for _ in 0..max_frames {
        if rbp == 0 {
            return WalkEnd::Outermost;
        }
        let in_bounds = rbp >= bottom && rbp.checked_add(16).is_some_and(|end| end <= top);
        if rbp % 8 != 0 || !in_bounds {
            return WalkEnd::BadFramePointer(rbp);
        }
        let (next, ret) = (read(rbp), read(rbp + 8));
        if ret == 0 {
            return WalkEnd::Outermost;
        }
        emit(ret);
        if next != 0 && next <= rbp {
            return WalkEnd::NotAscending(next);
        }
        rbp = next;
    }
    WalkEnd::TooDeep
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTTOM: u64 = 0x10_0000;
    const TOP: u64 = BOTTOM + 0x1000;

    fn stack(words: &[(u64, u64)]) -> impl Fn(u64) -> u64 + '_ {
        move |addr| {
            assert!(addr >= BOTTOM && addr + 8 <= TOP && addr % 8 == 0, "read outside bounds");
            words.iter().find(|(a, _)| *a == addr).map_or(0, |(_, v)| *v)
        }
    }

    fn walk(rbp: u64, words: &[(u64, u64)]) -> (Vec<u64>, WalkEnd) {
        let mut out = Vec::new();
        let end = walk_frame_pointers(rbp, BOTTOM, TOP, 16, stack(words), |a| out.push(a));
        (out, end)
    }

    #[test]
    fn a_proper_chain_is_walked_to_the_outermost_frame() {
        let f1 = BOTTOM + 0x100;
        let f2 = BOTTOM + 0x200;
        let words = [(f1, f2), (f1 + 8, 0xaaaa), (f2, 0), (f2 + 8, 0xbbbb)];
        assert_eq!(walk(f1, &words), (vec![0xaaaa, 0xbbbb], WalkEnd::Outermost));
    }

    #[test]
    fn loops_and_wild_pointers_end_the_walk() {
        let f = BOTTOM + 0x100;
        assert_eq!(walk(f, &[(f, f), (f + 8, 1)]), (vec![1], WalkEnd::NotAscending(f)));
        assert_eq!(walk(TOP - 8, &[]).1, WalkEnd::BadFramePointer(TOP - 8));
        assert_eq!(walk(BOTTOM + 3, &[]).1, WalkEnd::BadFramePointer(BOTTOM + 3));
        assert_eq!(walk(u64::MAX - 7, &[]).1, WalkEnd::BadFramePointer(u64::MAX - 7));
        let f2 = BOTTOM + 0x200;
        assert_eq!(walk(f, &[(f, 0xdead_0000), (f + 8, 2)]).1, WalkEnd::BadFramePointer(0xdead_0000));
        assert_eq!(walk(f2, &[(f2, f), (f2 + 8, 3)]).1, WalkEnd::NotAscending(f));
    }

    #[test]
    fn random_stacks_never_read_out_of_bounds() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let words: Vec<(u64, u64)> = (0..64)
                .map(|i| (BOTTOM + i * 64, if rnd() % 2 == 0 { BOTTOM + rnd() % 0x1100 } else { rnd() }))
                .collect();
            walk(BOTTOM + rnd() % 0x1000, &words);
        }
    }
}

/// The kernel's view of memory for the unwinder: stacks from `stack_info`,
/// words read directly (only ever inside those stacks), text from the
/// symbol table (or, without symbols, the kernel image's range).
#[cfg(target_os = "none")]
struct KernelWalker;

#[cfg(target_os = "none")]
impl super::unwind::Walker for KernelWalker {
    fn stack_of(&self, addr: u64) -> Option<super::unwind::Stack> {
        use crate::stacks::info::StackKind;
        use super::unwind::{Link, Stack};
        let s = crate::stacks::info::stack_of(addr)?;
        let link = match s.kind {
            StackKind::Task => Link::None,
            StackKind::Irq => Link::TopWord,
            StackKind::Exception(_) => Link::HardwareFrame,
        };
        Some(Stack { name: s.name(), bottom: s.bottom, top: s.top, link })
    }

    fn read(&self, addr: u64) -> u64 {
        // SAFETY: the unwinder only reads aligned words inside stacks that
        // `stack_of` returned, and every known stack is mapped.
        unsafe { (addr as *const u64).read_volatile() }
    }

    fn is_text(&self, addr: u64) -> bool {
        super::symbols::is_text(addr)
    }
}

/// `Call Trace:` from (`rsp`, `rbp`) across every stack: ` <IRQ>` ...
/// ` </IRQ>` markers, `? ` before addresses the frame-pointer chain does
/// not prove, each address as `name+0xoff/0xlen`.
#[cfg(target_os = "none")]
pub fn print_trace(rsp: u64, rbp: u64) {
    use super::unwind::{unwind, Line};
    use crate::println;
    println!("Call Trace:");
    // An overflowed stack's RSP is in its guard page: start at its bottom.
    let rsp = match (crate::stacks::info::stack_of(rsp), crate::stacks::info::guard_hit(rsp)) {
        (None, Some(s)) => s.bottom,
        _ => rsp,
    };
    if crate::stacks::info::stack_of(rsp).is_none() {
        println!(" (RSP {rsp:#x} is on no known stack; no trace)");
        return;
    }
    unwind(&KernelWalker, rsp, rbp, |line| match line {
        Line::Enter(name) => println!(" <{name}>"),
        Line::Leave(name) => println!(" </{name}>"),
        Line::Addr { addr, reliable } => {
            println!(" {}{}", if reliable { "" } else { "? " }, super::symbols::Pb(addr))
        }
    });
}
