//! The cross-stack unwinder (Linux `show_trace_log_lvl` with the
//! frame-pointer unwinder's "reliable" test).
//!
//! For each stack in the walk, scan every word from the stack pointer to the
//! top; print each word that is a kernel text address, plainly when the
//! frame-pointer chain proves it (the word sits at `rbp + 8` of the current
//! frame), with `? ` otherwise (a stale value, or a frame without a frame
//! pointer) — nothing is dropped. Then cross to the stack this one
//! interrupted: an IRQ stack's top word holds the interrupted RSP; an IST
//! stack's hardware frame (at its top) holds it. Markers `<TYPE>`/`</TYPE>`
//! bracket every stack but the task's.
//!
//! Defensive by construction: memory is only read through `Walker::read`,
//! which the caller limits to known stack bounds; every pointer is checked
//! against the current stack before use; a stack is visited at most once
//! and every loop is bounded. Pure, so the host tests it on synthetic and
//! random stacks.

/// How a stack links to the stack it interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// A task's stack: the walk ends here.
    None,
    /// IRQ stack: the interrupted RSP is in the top word.
    TopWord,
    /// IST stack: the CPU's frame is at the top; its RSP word is at `top - 16`.
    HardwareFrame,
}

/// One stack as the unwinder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// `TASK`, `IRQ`, `#DF`, `NMI`, ...
    pub name: &'static str,
    pub bottom: u64,
    pub top: u64,
    pub link: Link,
}

/// What the caller knows about memory and code.
pub trait Walker {
    /// The stack holding `addr`, if any.
    fn stack_of(&self, addr: u64) -> Option<Stack>;
    /// The word at `addr` (only ever called for aligned addresses inside a
    /// stack returned by `stack_of`).
    fn read(&self, addr: u64) -> u64;
    /// Whether `addr` is inside kernel code.
    fn is_text(&self, addr: u64) -> bool;
    /// Whether the text address at `slot` is an interrupted RIP saved by
    /// the CPU or the entry code, not a return address: it points *at* an
    /// instruction, so it is printed as is (`%pS`), not looked up at
    /// `addr - 1` (`%pB`).
    fn is_interrupted_ip(&self, _slot: u64) -> bool {
        false
    }
}

/// One line of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    Enter(&'static str),
    Leave(&'static str),
    /// A text address; `reliable` = proven by the frame-pointer chain.
    Addr {
        addr: u64,
        reliable: bool,
    },
    /// The same for an interrupted RIP (see `Walker::is_interrupted_ip`).
    Ip {
        addr: u64,
        reliable: bool,
    },
}

/// At most this many stacks per walk (a CPU has task, IRQ and six IST stacks).
const MAX_STACKS: usize = 12;

/// Walk from (`rsp`, `rbp`) across every stack, calling `emit` per line.
/// Allocates nothing (it runs in NMI context for `bt-nmi`).
pub fn unwind(walker: &impl Walker, rsp: u64, rbp: u64, mut emit: impl FnMut(Line)) {
    let mut visited = [(0u64, 0u64); MAX_STACKS];
    let (mut sp, mut fp) = (rsp, rbp);
    for n in 0..MAX_STACKS {
        let Some(stack) = walker.stack_of(sp) else { return };
        if visited[..n].contains(&(stack.bottom, stack.top)) {
            return; // a link back to a stack already walked: corrupt, stop
        }
        visited[n] = (stack.bottom, stack.top);
        let marked = stack.link != Link::None;
        if marked {
            emit(Line::Enter(stack.name));
        }
        let in_stack =
            |a: u64| a.is_multiple_of(8) && a >= stack.bottom && a.checked_add(8).is_some_and(|e| e <= stack.top);
        // From RSP up; a stack that is readable only from higher up (a
        // dynamic thread stack's backed part) from there.
        let mut slot = sp.next_multiple_of(8).max(stack.bottom);
        while in_stack(slot) {
            let word = walker.read(slot);
            if walker.is_text(word) {
                let reliable = fp.checked_add(8) == Some(slot) && in_stack(fp);
                if walker.is_interrupted_ip(slot) {
                    emit(Line::Ip { addr: word, reliable });
                } else {
                    emit(Line::Addr { addr: word, reliable });
                }
                if reliable {
                    // Next frame: the caller's RBP, saved at [fp]. On this
                    // stack it must lie above this frame (else the chain is
                    // over); pointing elsewhere it may continue on the stack
                    // this one interrupted (the entry code's fake frame).
                    let next = walker.read(fp);
                    fp = if next > fp || !in_stack(next) { next } else { 0 };
                }
            }
            slot += 8;
        }
        if marked {
            emit(Line::Leave(stack.name));
        }
        sp = match stack.link {
            Link::None => return,
            Link::TopWord => walker.read(stack.top - 8),
            Link::HardwareFrame if stack.top - stack.bottom >= 16 => walker.read(stack.top - 16),
            Link::HardwareFrame => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use std::collections::HashMap;

    const TEXT: core::ops::Range<u64> = 0xffff_ffff_8000_0000..0xffff_ffff_8010_0000;

    struct Fake {
        stacks: Vec<Stack>,
        mem: HashMap<u64, u64>,
        reads: Cell<usize>,
    }

    impl Walker for Fake {
        fn stack_of(&self, addr: u64) -> Option<Stack> {
            self.stacks.iter().copied().find(|s| (s.bottom..s.top).contains(&addr))
        }
        fn read(&self, addr: u64) -> u64 {
            self.reads.set(self.reads.get() + 1);
            assert!(addr.is_multiple_of(8), "unaligned read {addr:#x}");
            assert!(
                self.stacks.iter().any(|s| addr >= s.bottom && addr + 8 <= s.top),
                "read outside every stack: {addr:#x}"
            );
            *self.mem.get(&addr).unwrap_or(&0)
        }
        fn is_text(&self, addr: u64) -> bool {
            TEXT.contains(&addr)
        }
    }

    const TASK: Stack = Stack { name: "TASK", bottom: 0x10000, top: 0x14000, link: Link::None };
    const IRQ: Stack = Stack { name: "IRQ", bottom: 0x20000, top: 0x24000, link: Link::TopWord };
    const NMI: Stack = Stack { name: "NMI", bottom: 0x30000, top: 0x32000, link: Link::HardwareFrame };

    fn fake(stacks: Vec<Stack>, words: &[(u64, u64)]) -> Fake {
        Fake { stacks, mem: words.iter().copied().collect(), reads: Cell::new(0) }
    }

    fn walk(f: &Fake, rsp: u64, rbp: u64) -> Vec<Line> {
        let mut out = Vec::new();
        unwind(f, rsp, rbp, |l| out.push(l));
        out
    }

    fn addr(a: u64, reliable: bool) -> Line {
        Line::Addr { addr: a, reliable }
    }

    /// `Fake`, plus one slot that holds an interrupted RIP.
    struct WithIp(Fake, u64);

    impl Walker for WithIp {
        fn stack_of(&self, addr: u64) -> Option<Stack> {
            self.0.stack_of(addr)
        }
        fn read(&self, addr: u64) -> u64 {
            self.0.read(addr)
        }
        fn is_text(&self, addr: u64) -> bool {
            self.0.is_text(addr)
        }
        fn is_interrupted_ip(&self, slot: u64) -> bool {
            slot == self.1
        }
    }

    #[test]
    fn an_interrupted_rip_is_told_apart_from_return_addresses() {
        let (f1, f2) = (0x13000, 0x13800);
        let t = |n| TEXT.start + n;
        let f = WithIp(fake(vec![TASK], &[(f1, f2), (f1 + 8, t(1)), (f2, 0), (f2 + 8, t(2))]), f1 + 8);
        let mut out = Vec::new();
        unwind(&f, 0x12f00, f1, |l| out.push(l));
        assert_eq!(out, vec![Line::Ip { addr: t(1), reliable: true }, addr(t(2), true)]);
    }

    #[test]
    fn a_proper_chain_is_all_reliable() {
        let (f1, f2) = (0x13000, 0x13800);
        let t = |n| TEXT.start + n;
        let f = fake(vec![TASK], &[(f1, f2), (f1 + 8, t(1)), (f2, 0), (f2 + 8, t(2))]);
        assert_eq!(walk(&f, 0x12f00, f1), vec![addr(t(1), true), addr(t(2), true)]);
    }

    #[test]
    fn a_frame_without_frame_pointer_gives_a_question_mark_and_loses_nothing() {
        // f1's caller did not set up a frame: its return address sits between
        // f1's frame and f2's, unproven.
        let (f1, f2) = (0x13000, 0x13800);
        let t = |n| TEXT.start + n;
        let f = fake(vec![TASK], &[(f1, f2), (f1 + 8, t(1)), (0x13400, t(9)), (f2, 0), (f2 + 8, t(2))]);
        assert_eq!(walk(&f, 0x12f00, f1), vec![addr(t(1), true), addr(t(9), false), addr(t(2), true)]);
    }

    #[test]
    fn stale_words_below_the_frame_and_data_words_are_handled() {
        let t = |n| TEXT.start + n;
        // A stale return address below RSP is not scanned; one above, off the chain, gets '?'.
        let f = fake(vec![TASK], &[(0x12000, t(5)), (0x13100, t(6)), (0x13108, 12345)]);
        assert_eq!(walk(&f, 0x13000, 0), vec![addr(t(6), false)]);
    }

    #[test]
    fn nmi_then_irq_then_task_with_markers_in_order() {
        let t = |n| TEXT.start + n;
        let task_frame = 0x13f00; // interrupted task context (RSP into the task stack)
        let irq_regs = 0x13e00; // &Regs on the task stack, stored in the IRQ top word
        let nmi_interrupted_rsp = 0x23f00; // NMI interrupted the IRQ handler
        let f = fake(
            vec![TASK, IRQ, NMI],
            &[
                (NMI.top - 16, nmi_interrupted_rsp),
                (0x31f00, t(1)),
                (IRQ.top - 8, irq_regs),
                (0x23f80, t(2)),
                (task_frame, t(3)),
            ],
        );
        assert_eq!(
            walk(&f, 0x31e00, 0),
            vec![
                Line::Enter("NMI"),
                addr(t(1), false),
                Line::Leave("NMI"),
                Line::Enter("IRQ"),
                addr(t(2), false),
                Line::Leave("IRQ"),
                addr(t(3), false),
            ]
        );
    }

    #[test]
    fn the_chain_continues_across_a_stack_switch() {
        let t = |n| TEXT.start + n;
        // Handler frame on the IRQ stack whose saved RBP points into the task stack.
        let (hf, tf) = (0x23e00, 0x13e00);
        let f = fake(vec![TASK, IRQ], &[(hf, tf), (hf + 8, t(1)), (IRQ.top - 8, 0x13d00), (tf, 0), (tf + 8, t(2))]);
        assert_eq!(
            walk(&f, 0x23d00, hf),
            vec![Line::Enter("IRQ"), addr(t(1), true), Line::Leave("IRQ"), addr(t(2), true)]
        );
    }

    #[test]
    fn loops_self_references_and_wild_links_end_the_walk() {
        let t = |n| TEXT.start + n;
        // A self-referencing frame pointer; an IRQ link back to the IRQ stack.
        let f = fake(vec![TASK, IRQ], &[(0x23000, 0x23000), (0x23008, t(1)), (IRQ.top - 8, 0x23010)]);
        let lines = walk(&f, 0x22f00, 0x23000);
        assert_eq!(lines, vec![Line::Enter("IRQ"), addr(t(1), true), Line::Leave("IRQ")]);
        // Link into nowhere, into a guard page, out of range.
        for link in [0u64, 0x1fff8, u64::MAX - 7, 0xdead_beef] {
            let f = fake(vec![TASK, IRQ], &[(IRQ.top - 8, link)]);
            walk(&f, 0x23000, 0);
        }
    }

    #[test]
    fn random_images_never_panic_or_read_outside_the_stacks() {
        let mut x = 0xdead_beef_cafe_f00du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let small = [
            Stack { name: "TASK", bottom: 0x10000, top: 0x10200, link: Link::None },
            Stack { name: "IRQ", bottom: 0x20000, top: 0x20200, link: Link::TopWord },
            Stack { name: "#DF", bottom: 0x30000, top: 0x30200, link: Link::HardwareFrame },
            Stack { name: "#DB2", bottom: 0x40000, top: 0x40000, link: Link::HardwareFrame },
        ];
        let pick = |r: u64| -> u64 {
            // Words biased towards interesting values: pointers into the stacks,
            // text addresses, and noise.
            match r % 4 {
                0 => small[(r >> 8) as usize % 3].bottom + (r >> 16) % 0x220,
                1 => TEXT.start + (r >> 8) % 0x1000,
                _ => r,
            }
        };
        for _ in 0..100_000 {
            let mut mem = HashMap::new();
            for s in &small[..3] {
                for a in (s.bottom..s.top).step_by(8) {
                    if rnd() % 3 == 0 {
                        mem.insert(a, pick(rnd()));
                    }
                }
            }
            let f = Fake { stacks: small.to_vec(), mem, reads: Cell::new(0) };
            let mut lines = 0;
            unwind(&f, pick(rnd()), pick(rnd()), |_| lines += 1);
            // Bounded: every word of every stack at most once, plus links.
            assert!(f.reads.get() <= 3 * (0x200 / 8) * 2 + 8, "{} reads", f.reads.get());
            assert!(lines <= 3 * (0x200 / 8) + 8);
        }
    }
}
