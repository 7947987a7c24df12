//! Runtime against static: does the static worst case bound what the stack
//! tracer saw? A recorded chain is resolved against the code; the calls it
//! made through pointers (which the disassembly cannot follow) are learned
//! as edges of the call graph; then, from each call of the innermost entry's
//! chain, the depth at that call plus the static worst case below its callee
//! must reach the recorded maximum. Anything else is a bug in one of the two
//! tools (a frame size, a missing call edge, a wrong depth).

use std::collections::HashMap;

use crate::frame::{Callee, Frame};
use crate::graph::Graph;

/// One row of a `stack-trace` table, resolved against the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The table's depth column: the stack slot of this row's return
    /// address, in bytes from the top of the stack.
    pub depth: u64,
    /// The function holding the row's location (None: no symbol, or a name
    /// several functions share).
    pub func: Option<u64>,
    /// The location is the return address of a call in `func`: the depth
    /// below `func`'s entry RSP at the call, and the callee (None for the
    /// stack tracer's own `mcount` call). None: the location is no call's
    /// return (an interrupted RIP the entry code linked in).
    pub call: Option<(u64, Option<Callee>)>,
}

/// What a chain teaches the call graph.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// (caller, depth below the caller's entry RSP at the call, callee) of
    /// each call the chain made through a pointer.
    pub edges: Vec<(u64, u64, u64)>,
    /// (function, callee) of each tail call through a pointer: the chain
    /// shows the callee where the function (called directly, its frame then
    /// popped) jumped to it.
    pub tail_edges: Vec<(u64, u64)>,
    /// (caller, callee): the chain says the caller called the callee, but
    /// the call instruction there goes elsewhere (directly, or by tail
    /// calls from there): the graph lacks an edge.
    pub missing: Vec<(u64, u64)>,
}

/// The indirect calls of `rows` (row 0 the deepest), checked against the
/// direct calls the code makes. A row below an interrupted RIP teaches
/// nothing: the interrupted function may not have set its frame pointer
/// yet (an interrupt at its first instruction), so its caller's frame is
/// the next one the chain shows.
pub fn learn(rows: &[Resolved], frames: &HashMap<u64, Frame>, into: &mut Learned) {
    for j in 1..rows.len() {
        let (Some((depth, Some(callee))), Some(caller), Some(below), Some(_)) =
            (rows[j].call, rows[j].func, rows[j - 1].func, rows[j - 1].call)
        else {
            continue;
        };
        match callee {
            Callee::Indirect | Callee::Slot(_) => push_unique(&mut into.edges, (caller, depth, below)),
            Callee::Direct(target) => {
                let reached = tail_call_closure(frames, target);
                if reached.contains(&below) {
                    continue;
                }
                match reached.iter().find(|f| frames.get(f).is_some_and(|f| f.indirect_tail_call)) {
                    Some(&via) => push_unique(&mut into.tail_edges, (via, below)),
                    None => push_unique(&mut into.missing, (caller, below)),
                }
            }
        }
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// `from` and every function it reaches by tail calls.
fn tail_call_closure(frames: &HashMap<u64, Frame>, from: u64) -> Vec<u64> {
    let mut seen = vec![from];
    let mut next = 0;
    while next < seen.len() && seen.len() < 64 {
        let f = seen[next];
        next += 1;
        for &t in frames.get(&f).map_or(&[][..], |f| &f.tail_calls[..]) {
            if !seen.contains(&t) {
                seen.push(t);
            }
        }
    }
    seen
}

/// Add the learned calls to the graph's frames, as direct calls at the depth
/// of the indirect call they went through.
pub fn add_edges(frames: &mut HashMap<u64, Frame>, learned: &Learned) {
    for &(caller, depth, callee) in &learned.edges {
        if let Some(f) = frames.get_mut(&caller) {
            push_unique(&mut f.calls, (depth, Callee::Direct(callee)));
        }
    }
    for &(via, callee) in &learned.tail_edges {
        if let Some(f) = frames.get_mut(&via) {
            push_unique(&mut f.tail_calls, callee);
        }
    }
}

/// One check of a chain: from row `row`, whose call entered `callee` with
/// its return address at depth `at`, the static worst case below `callee`
/// is `below` bytes (return address included), so nothing under that call
/// can go deeper than `at - 8 + below` — plus the 8 bytes of the tracer's
/// own `mcount` return address, which its depth column counts and the
/// static figures leave out: `at + below`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub row: usize,
    pub callee: u64,
    pub at: u64,
    pub below: u64,
}

impl Check {
    pub fn limit(&self) -> u64 {
        self.at + self.below
    }
}

/// The outcome for one chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Bound {
    /// Every check holds; the outermost one is given: the entry's, unless
    /// an interrupt entered above it or (`recursion`) the chain called a
    /// function a second time there.
    Within { check: Check, recursion: bool },
    /// A check the recorded depth exceeds: a bug in one of the tools.
    Over(Check),
    /// Nothing to check: the chain has no call.
    Unchecked,
}

/// Check the recorded maximum (row 0's depth) against the static worst case
/// below each call of the innermost entry's chain: rows 1, 2, ... up to the
/// first row that is no call (where an interrupt entered), or up to where
/// the chain calls a function a second time. The static worst case follows
/// paths that call no function twice (a cycle is reported, not followed),
/// so it bounds a recorded chain only while that chain does the same.
pub fn bound(rows: &[Resolved], graph: &mut Graph) -> Bound {
    let Some(top) = rows.first() else { return Bound::Unchecked };
    let mut below_call: Vec<u64> = Vec::new();
    let mut outermost = None;
    for j in 1..rows.len() {
        if !matches!(rows[j].call, Some((_, Some(_)))) || rows[j].func.is_none() {
            break;
        }
        let Some(callee) = rows[j - 1].func else { break };
        if below_call.contains(&callee) {
            return outermost.map_or(Bound::Unchecked, |check| Bound::Within { check, recursion: true });
        }
        below_call.push(callee);
        let check = Check { row: j, callee, at: rows[j].depth, below: graph.worst(callee).bytes };
        if top.depth > check.limit() {
            return Bound::Over(check);
        }
        outermost = Some(check);
    }
    outermost.map_or(Bound::Unchecked, |check| Bound::Within { check, recursion: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(size: u64, calls: &[(u64, Callee)]) -> Frame {
        Frame { size, peak: size, calls: calls.to_vec(), fp_depth: Some(8), ..Default::default() }
    }

    fn row(depth: u64, func: u64, call: Option<(u64, Option<Callee>)>) -> Resolved {
        Resolved { depth, func: Some(func), call }
    }

    // 1 (an entry) calls 2 through a pointer at depth 16; 2 calls 3
    // directly at depth 32; 3 is 64 bytes deep. The tracer saw 3's hook
    // call with 3's frame complete: 8 + 16 + 8 + 32 + 8 + 64 + 8.
    fn chain() -> (HashMap<u64, Frame>, Vec<Resolved>) {
        let frames = HashMap::from([
            (1, frame(16, &[(16, Callee::Indirect)])),
            (2, frame(32, &[(32, Callee::Direct(3))])),
            (3, frame(64, &[])),
        ]);
        let rows = vec![
            row(8 + 16 + 8 + 32 + 8 + 64 + 8, 3, Some((64, None))),
            row(8 + 16 + 8 + 32 + 8, 2, Some((32, Some(Callee::Direct(3))))),
            row(8 + 16 + 8, 1, Some((16, Some(Callee::Indirect)))),
        ];
        (frames, rows)
    }

    #[test]
    fn an_indirect_call_the_chain_took_becomes_an_edge_and_the_entry_is_bounded() {
        let (mut frames, rows) = chain();
        let mut learned = Learned::default();
        learn(&rows, &frames, &mut learned);
        assert_eq!(learned, Learned { edges: vec![(1, 16, 2)], ..Default::default() });
        add_edges(&mut frames, &learned);
        let b = bound(&rows, &mut Graph::new(&frames));
        // From row 2 (1's call into 2): 32 + (8 + 32 + 8 + 64) = 144 = the depth.
        assert_eq!(b, Bound::Within { check: Check { row: 2, callee: 2, at: 32, below: 112 }, recursion: false });
    }

    #[test]
    fn a_frame_deeper_than_the_code_says_is_caught() {
        let (mut frames, mut rows) = chain();
        rows[0].depth += 8;
        let mut learned = Learned::default();
        learn(&rows, &frames, &mut learned);
        add_edges(&mut frames, &learned);
        assert!(matches!(bound(&rows, &mut Graph::new(&frames)), Bound::Over(Check { row: 1, .. })));
    }

    #[test]
    fn a_call_the_code_does_not_make_is_a_missing_edge() {
        // The row says 2's call at that return address went into 3; the
        // instruction there calls 1.
        let (frames, _) = chain();
        let mut learned = Learned::default();
        let rows = vec![row(100, 3, Some((64, None))), row(50, 2, Some((32, Some(Callee::Direct(1)))))];
        learn(&rows, &frames, &mut learned);
        assert_eq!(learned.missing, vec![(2, 3)]);
    }

    #[test]
    fn a_tail_call_on_the_way_is_no_missing_edge() {
        let mut frames =
            HashMap::from([(1, frame(8, &[(8, Callee::Direct(2))])), (2, frame(0, &[])), (3, frame(8, &[]))]);
        frames.get_mut(&2).unwrap().tail_calls.push(3);
        let rows = vec![row(40, 3, Some((8, None))), row(24, 1, Some((8, Some(Callee::Direct(2)))))];
        let mut learned = Learned::default();
        learn(&rows, &frames, &mut learned);
        assert!(learned.missing.is_empty());
    }

    #[test]
    fn a_tail_call_through_a_pointer_is_learned_where_the_frame_was_popped() {
        // 1 calls 2 directly; 2 pops its frame and jumps through a pointer
        // to 3: the chain shows 1 calling 3.
        let mut frames =
            HashMap::from([(1, frame(8, &[(8, Callee::Direct(2))])), (2, frame(24, &[])), (3, frame(40, &[]))]);
        frames.get_mut(&2).unwrap().indirect_tail_call = true;
        let rows =
            vec![row(8 + 8 + 8 + 40 + 8, 3, Some((40, None))), row(8 + 8 + 8, 1, Some((8, Some(Callee::Direct(2)))))];
        let mut learned = Learned::default();
        learn(&rows, &frames, &mut learned);
        assert_eq!(learned, Learned { tail_edges: vec![(2, 3)], ..Default::default() });
        add_edges(&mut frames, &learned);
        // 1's call lands (after the jump) in 3: 24 + 3's 48 bytes.
        let b = bound(&rows, &mut Graph::new(&frames));
        assert_eq!(b, Bound::Within { check: Check { row: 1, callee: 3, at: 24, below: 8 + 40 }, recursion: false });
        // And 2, whose tail call now leads to 3, is bounded from its whole
        // frame (an over-estimate, never under): 8 + 24 + 8 + 40.
        assert_eq!(Graph::new(&frames).worst(2).bytes, 80);
    }

    #[test]
    fn a_chain_is_checked_up_to_where_it_recurses_or_an_interrupt_entered() {
        // 1 calls 2, which calls itself twice (40 bytes a level): the static
        // worst case below 2 is one pass (the cycle is not followed), so
        // only the innermost call is checked.
        let frames =
            HashMap::from([(1, frame(16, &[(16, Callee::Direct(2))])), (2, frame(32, &[(32, Callee::Direct(2))]))]);
        let rows = vec![
            row(152, 2, Some((32, None))),
            row(112, 2, Some((32, Some(Callee::Direct(2))))),
            row(72, 2, Some((32, Some(Callee::Direct(2))))),
            row(32, 1, Some((16, Some(Callee::Direct(2))))),
        ];
        let b = bound(&rows, &mut Graph::new(&frames));
        assert_eq!(b, Bound::Within { check: Check { row: 1, callee: 2, at: 112, below: 40 }, recursion: true });
        // An interrupted RIP at row 1: no call of the chain is left to check.
        let frames = HashMap::from([(3, frame(16, &[]))]);
        let rows =
            vec![row(100, 3, Some((16, None))), row(40, 3, None), row(20, 3, Some((16, Some(Callee::Direct(3)))))];
        assert_eq!(bound(&rows, &mut Graph::new(&frames)), Bound::Unchecked);
    }
}
