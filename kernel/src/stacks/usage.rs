//! Stack-usage accounting (Linux `CONFIG_DEBUG_STACK_USAGE`).
//!
//! Every stack is zero-filled when handed out, and stacks grow down, so the
//! zero words just above the bottom were never touched: their count is how
//! close the stack ever came to overflowing. Pure: works on a word slice.
//!
//! Stack erasing (Linux STACKLEAK) fills used thread stack with
//! `STACKLEAK_POISON` on every return to user mode; poison counts as
//! unused like zero, and the task keeps the deepest point each erase saw
//! (`Task::stack_not_used`), so the high-water mark survives the erasing.

use core::sync::atomic::{AtomicU64, Ordering};

/// Linux `stack_not_used`: bytes above the end magic (`words[0]`) that were
/// never written.
pub fn stack_not_used(words: &[u64]) -> u64 {
    words.get(1..).map_or(0, untouched)
}

/// Bytes from the bottom of a stack without end magic (IRQ and IST stacks)
/// that were never written.
pub fn untouched(words: &[u64]) -> u64 {
    scan(words).untouched
}

/// What one pass over a stack's words (from its bottom) finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Bytes still zero: what a reuse of the stack need not clear.
    pub zero: u64,
    /// Bytes never used: zero, or poison that stack erasing wrote there.
    pub untouched: u64,
}

/// Words per block of the zero scan: the OR of a block is one load and
/// one `or` per word and a test per block (most of a stack is zero,
/// usually: every reaped thread's is scanned).
const SCAN_BLOCK: usize = 32;

/// Scan `words` from the bottom: blocks while all zero, then word by word.
pub fn scan(words: &[u64]) -> Scan {
    let zero_blocks =
        words.as_chunks::<SCAN_BLOCK>().0.iter().take_while(|c| c.iter().fold(0, |a, &w| a | w) == 0).count();
    let rest = &words[zero_blocks * SCAN_BLOCK..];
    let zero = zero_blocks * SCAN_BLOCK + rest.iter().take_while(|&&w| w == 0).count();
    let untouched = zero + words[zero..].iter().take_while(|&&w| w == 0 || w == STACKLEAK_POISON).count();
    Scan { zero: zero as u64 * 8, untouched: untouched as u64 * 8 }
}

pub use crate::layout::STACKLEAK_POISON;

/// The system-wide low-water mark of free thread stack (Linux `lowest_to_date`
/// in `check_stack_usage`).
pub struct LowWater(AtomicU64);

impl LowWater {
    pub const fn new() -> Self {
        LowWater(AtomicU64::new(u64::MAX))
    }

    /// Record `free` bytes; true if it is a new low (then Linux prints
    /// "used greatest stack depth").
    pub fn record(&self, free: u64) -> bool {
        self.0.fetch_min(free, Ordering::Relaxed) > free
    }

    pub fn get(&self) -> Option<u64> {
        let v = self.0.load(Ordering::Relaxed);
        (v != u64::MAX).then_some(v)
    }
}

impl Default for LowWater {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_words_above_the_magic_are_counted() {
        let mut stack = vec![0u64; 2048];
        stack[0] = 0x57AC_6E9D;
        assert_eq!(stack_not_used(&stack), 2047 * 8);
        stack[100] = 1; // the deepest write
        stack[2000] = 7;
        assert_eq!(stack_not_used(&stack), 99 * 8);
        assert_eq!(untouched(&stack[1..]), 99 * 8);
        stack[100] = STACKLEAK_POISON; // erased: unused again
        assert_eq!(stack_not_used(&stack), 1999 * 8);
        assert_eq!(stack_not_used(&[]), 0);
    }

    #[test]
    fn the_block_scan_agrees_with_a_word_scan_everywhere() {
        let slow = |w: &[u64]| w.iter().take_while(|&&x| x == 0 || x == STACKLEAK_POISON).count() as u64 * 8;
        let slow_zero = |w: &[u64]| w.iter().take_while(|&&x| x == 0).count() as u64 * 8;
        for len in [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100] {
            for hit in 0..=len {
                for value in [1, STACKLEAK_POISON] {
                    let mut words = vec![0u64; len];
                    if hit < len {
                        words[hit] = value;
                    }
                    let want = Scan { zero: slow_zero(&words), untouched: slow(&words) };
                    assert_eq!(scan(&words), want, "len {len}, {value:#x} at {hit}");
                }
            }
        }
    }

    #[test]
    fn poison_above_zero_is_untouched_but_not_zero() {
        let mut words = vec![0u64; 100];
        words[40..60].fill(STACKLEAK_POISON);
        words[60] = 7;
        assert_eq!(scan(&words), Scan { zero: 40 * 8, untouched: 60 * 8 });
    }

    #[test]
    fn low_water_reports_only_new_lows() {
        let lw = LowWater::new();
        assert_eq!(lw.get(), None);
        assert!(lw.record(9000));
        assert!(!lw.record(9500));
        assert!(!lw.record(9000));
        assert!(lw.record(1200));
        assert_eq!(lw.get(), Some(1200));
    }
}
