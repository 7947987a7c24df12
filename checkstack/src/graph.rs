//! The worst case per entry point: the deepest path in bytes through the
//! call graph of direct calls. Recursion (a cycle) and indirect calls
//! cannot be bounded from the code; they are reported with the path that
//! reaches them, never dropped.

use std::collections::HashMap;

use crate::frame::{Callee, Frame};

/// The deepest path below one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worst {
    /// Bytes from the function's entry RSP (return address included) to the
    /// deepest point of the path.
    pub bytes: u64,
    /// The functions on that path, the starting one first.
    pub path: Vec<u64>,
    /// Functions on some path from here that take part in a cycle.
    pub recursion: Vec<u64>,
    /// Functions on some path from here that call through a pointer.
    pub indirect: Vec<u64>,
    /// Direct calls to addresses that are no known function.
    pub unknown: Vec<u64>,
    /// Calls into the functions the graph was told to stop at (`cut`).
    pub cut: Vec<u64>,
}

pub struct Graph<'a> {
    frames: &'a HashMap<u64, Frame>,
    memo: HashMap<u64, Worst>,
    on_path: Vec<u64>,
    cut: Vec<u64>,
}

impl<'a> Graph<'a> {
    pub fn new(frames: &'a HashMap<u64, Frame>) -> Self {
        Graph { frames, memo: HashMap::new(), on_path: Vec::new(), cut: Vec::new() }
    }

    /// The same graph, but a call into one of `cut` counts only that
    /// function's own frame, not what it calls (the panic path: accounted
    /// for once, separately, instead of on every path that can panic).
    pub fn cutting(frames: &'a HashMap<u64, Frame>, cut: Vec<u64>) -> Self {
        Graph { cut, ..Graph::new(frames) }
    }

    /// The worst case below `f` (8 bytes for its return address, its frame,
    /// and the deepest callee below the depth of each call).
    pub fn worst(&mut self, f: u64) -> Worst {
        if let Some(w) = self.memo.get(&f) {
            return w.clone();
        }
        let Some(frame) = self.frames.get(&f) else {
            return Worst {
                bytes: 0,
                path: vec![],
                recursion: vec![],
                indirect: vec![],
                unknown: vec![f],
                cut: vec![],
            };
        };
        self.on_path.push(f);
        let mut best = Worst {
            bytes: 8 + frame.peak,
            path: vec![f],
            recursion: vec![],
            indirect: vec![],
            unknown: vec![],
            cut: vec![],
        };
        let calls =
            frame.calls.iter().copied().chain(frame.tail_calls.iter().map(|&t| (frame.peak, Callee::Direct(t))));
        let mut cycle = false;
        if frame.indirect_tail_call {
            push_unique(&mut best.indirect, f);
        }
        for (depth, callee) in calls {
            let target = match callee {
                Callee::Indirect | Callee::Slot(_) => {
                    push_unique(&mut best.indirect, f);
                    continue;
                }
                Callee::Direct(t) => t,
            };
            if self.cut.contains(&target) {
                push_unique(&mut best.cut, target);
                let bytes = 8 + depth + 8 + self.frames.get(&target).map_or(0, |t| t.peak);
                if bytes > best.bytes {
                    best.bytes = bytes;
                    best.path = vec![f, target];
                }
                continue;
            }
            if self.on_path.contains(&target) {
                cycle = true;
                push_unique(&mut best.recursion, target);
                continue;
            }
            let below = self.worst(target);
            for &r in &below.recursion {
                push_unique(&mut best.recursion, r);
            }
            for &i in &below.indirect {
                push_unique(&mut best.indirect, i);
            }
            for &u in &below.unknown {
                push_unique(&mut best.unknown, u);
            }
            for &c in &below.cut {
                push_unique(&mut best.cut, c);
            }
            let bytes = 8 + depth + below.bytes;
            if bytes > best.bytes {
                best.bytes = bytes;
                best.path = std::iter::once(f).chain(below.path.iter().copied()).collect();
            }
        }
        self.on_path.pop();
        // A result computed while part of a cycle was open depends on the
        // path that led here: do not reuse it elsewhere.
        if !cycle && best.recursion.iter().all(|r| !self.on_path.contains(r)) {
            self.memo.insert(f, best.clone());
        }
        best
    }
}

fn push_unique(v: &mut Vec<u64>, x: u64) {
    if !v.contains(&x) {
        v.push(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(size: u64, calls: &[(u64, Callee)]) -> Frame {
        Frame {
            size,
            peak: size,
            dynamic: false,
            calls: calls.to_vec(),
            tail_calls: vec![],
            call_sites: vec![],
            fp_depth: Some(8),
            ..Default::default()
        }
    }

    #[test]
    fn the_deepest_branch_wins_and_the_path_names_it() {
        // 1 calls 2 (at depth 16) and 3 (at depth 16); 2 is deeper.
        let frames = HashMap::from([
            (1, frame(16, &[(16, Callee::Direct(2)), (16, Callee::Direct(3))])),
            (2, frame(100, &[])),
            (3, frame(40, &[])),
        ]);
        let w = Graph::new(&frames).worst(1);
        assert_eq!(w.bytes, 8 + 16 + 8 + 100);
        assert_eq!(w.path, vec![1, 2]);
        assert!(w.recursion.is_empty() && w.indirect.is_empty());
    }

    #[test]
    fn recursion_and_cycles_are_reported_not_followed() {
        // 1 -> 2 -> 3 -> 2 (a cycle), 1 -> 1 (self recursion).
        let frames = HashMap::from([
            (1, frame(8, &[(8, Callee::Direct(2)), (8, Callee::Direct(1))])),
            (2, frame(8, &[(8, Callee::Direct(3))])),
            (3, frame(8, &[(8, Callee::Direct(2))])),
        ]);
        let w = Graph::new(&frames).worst(1);
        assert_eq!(w.path, vec![1, 2, 3]);
        let mut r = w.recursion.clone();
        r.sort();
        assert_eq!(r, vec![1, 2]);
    }

    #[test]
    fn indirect_and_unknown_calls_are_listed() {
        let frames = HashMap::from([
            (1, frame(8, &[(8, Callee::Direct(2)), (8, Callee::Direct(99))])),
            (2, frame(8, &[(8, Callee::Indirect)])),
        ]);
        let w = Graph::new(&frames).worst(1);
        assert_eq!(w.indirect, vec![2]);
        assert_eq!(w.unknown, vec![99]);
    }

    #[test]
    fn a_cut_function_counts_its_own_frame_only() {
        // 1 calls 2 (the panic handler, 64 bytes) which calls 3 (1000).
        let frames = HashMap::from([
            (1, frame(16, &[(16, Callee::Direct(2))])),
            (2, frame(64, &[(64, Callee::Direct(3))])),
            (3, frame(1000, &[])),
        ]);
        assert_eq!(Graph::new(&frames).worst(1).bytes, 8 + 16 + 8 + 64 + 8 + 1000);
        let w = Graph::cutting(&frames, vec![2]).worst(1);
        assert_eq!((w.bytes, w.path, w.cut), (8 + 16 + 8 + 64, vec![1, 2], vec![2]));
    }

    #[test]
    fn a_diamond_is_computed_once_and_the_same_either_way() {
        let frames = HashMap::from([
            (1, frame(0, &[(0, Callee::Direct(2)), (0, Callee::Direct(3))])),
            (2, frame(0, &[(0, Callee::Direct(4))])),
            (3, frame(32, &[(32, Callee::Direct(4))])),
            (4, frame(64, &[])),
        ]);
        let mut g = Graph::new(&frames);
        assert_eq!(g.worst(1).bytes, 8 + 8 + 32 + 8 + 64);
        assert_eq!(g.worst(3).bytes, 8 + 32 + 8 + 64);
    }
}
