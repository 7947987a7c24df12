//! Physical frame bookkeeping: one bit per 4 KiB frame, 1 = in use.
//!
//! Pure logic over a borrowed `[u64]`, so it runs on the host under
//! `cargo test`; `mm::init` places the bitmap itself in usable memory.

use core::ops::Range;

/// A physical frame number (physical address / PAGE_SIZE).
pub type Pfn = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is beyond the bitmap or was never usable memory.
    NotManaged(Pfn),
    /// The frame was already free.
    DoubleFree(Pfn),
}

pub struct FrameBitmap<'a> {
    bits: &'a mut [u64],
    /// Frames handed to `add_usable`, i.e. the allocator's total.
    usable: u64,
    free: u64,
    /// Lowest word that may have a free bit (speeds up first-fit).
    hint: usize,
    /// One bit per frame: 1 = usable memory at all (so `free` can reject
    /// frames that were never ours, e.g. the bootloader's or MMIO).
    usable_bits: &'a mut [u64],
}

impl<'a> FrameBitmap<'a> {
    /// Frames a bitmap of `words` words covers.
    pub const fn frames_per(words: usize) -> u64 {
        words as u64 * 64
    }

    /// A bitmap where every frame is in use and not usable; `add_usable` opens ranges.
    pub fn new(bits: &'a mut [u64], usable_bits: &'a mut [u64]) -> Self {
        assert_eq!(bits.len(), usable_bits.len());
        bits.fill(!0);
        usable_bits.fill(0);
        FrameBitmap { bits, usable: 0, free: 0, hint: 0, usable_bits }
    }

    pub fn capacity(&self) -> u64 {
        Self::frames_per(self.bits.len())
    }

    /// Mark `range` as usable, free memory. Frames outside the bitmap are ignored.
    pub fn add_usable(&mut self, range: Range<Pfn>) {
        let end = range.end.min(self.capacity());
        for pfn in range.start..end {
            let (w, b) = split(pfn);
            if self.usable_bits[w] & b == 0 {
                self.usable_bits[w] |= b;
                self.bits[w] &= !b;
                self.usable += 1;
                self.free += 1;
            }
        }
        self.hint = 0;
    }

    /// Take `range` (already usable) out of the free pool, e.g. for the bitmap itself.
    pub fn reserve(&mut self, range: Range<Pfn>) {
        for pfn in range {
            let (w, b) = split(pfn);
            if self.usable_bits[w] & b != 0 && self.bits[w] & b == 0 {
                self.bits[w] |= b;
                self.free -= 1;
            }
        }
    }

    /// First free frame, marked used.
    pub fn alloc(&mut self) -> Option<Pfn> {
        let start = self.hint;
        for (w, word) in self.bits.iter_mut().enumerate().skip(start) {
            if *word != !0 {
                let bit = (!*word).trailing_zeros() as u64;
                *word |= 1 << bit;
                self.free -= 1;
                self.hint = w;
                return Some(w as u64 * 64 + bit);
            }
        }
        None
    }

    /// `count` physically contiguous free frames, marked used; returns the first.
    pub fn alloc_contiguous(&mut self, count: u64) -> Option<Pfn> {
        if count == 0 {
            return None;
        }
        let mut run_start = 0;
        let mut run_len = 0;
        for pfn in 0..self.capacity() {
            if self.is_free(pfn) {
                if run_len == 0 {
                    run_start = pfn;
                }
                run_len += 1;
                if run_len == count {
                    self.reserve(run_start..run_start + count);
                    return Some(run_start);
                }
            } else {
                run_len = 0;
            }
        }
        None
    }

    pub fn free(&mut self, pfn: Pfn) -> Result<(), FrameError> {
        if pfn >= self.capacity() {
            return Err(FrameError::NotManaged(pfn));
        }
        let (w, b) = split(pfn);
        if self.usable_bits[w] & b == 0 {
            return Err(FrameError::NotManaged(pfn));
        }
        if self.bits[w] & b == 0 {
            return Err(FrameError::DoubleFree(pfn));
        }
        self.bits[w] &= !b;
        self.free += 1;
        self.hint = self.hint.min(w);
        Ok(())
    }

    pub fn is_free(&self, pfn: Pfn) -> bool {
        if pfn >= self.capacity() {
            return false;
        }
        let (w, b) = split(pfn);
        self.bits[w] & b == 0
    }

    pub fn usable_frames(&self) -> u64 {
        self.usable
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }
}

fn split(pfn: Pfn) -> (usize, u64) {
    ((pfn / 64) as usize, 1u64 << (pfn % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bitmap(words: usize, f: impl FnOnce(&mut FrameBitmap)) {
        let mut bits = vec![0u64; words];
        let mut usable = vec![0u64; words];
        f(&mut FrameBitmap::new(&mut bits, &mut usable));
    }

    #[test]
    fn only_usable_frames_are_handed_out() {
        with_bitmap(4, |fb| {
            fb.add_usable(10..13);
            assert_eq!((fb.usable_frames(), fb.free_frames()), (3, 3));
            assert_eq!(fb.alloc(), Some(10));
            assert_eq!(fb.alloc(), Some(11));
            assert_eq!(fb.alloc(), Some(12));
            assert_eq!(fb.alloc(), None);
            assert_eq!(fb.free_frames(), 0);
        });
    }

    #[test]
    fn free_rejects_double_free_and_foreign_frames() {
        with_bitmap(2, |fb| {
            fb.add_usable(0..64);
            let f = fb.alloc().unwrap();
            assert_eq!(fb.free(f), Ok(()));
            assert_eq!(fb.free(f), Err(FrameError::DoubleFree(f)));
            assert_eq!(fb.free(100), Err(FrameError::NotManaged(100)));
            assert_eq!(fb.free(1000), Err(FrameError::NotManaged(1000)));
            assert_eq!(fb.free_frames(), 64);
        });
    }

    #[test]
    fn freed_frames_are_reused_first_fit() {
        with_bitmap(2, |fb| {
            fb.add_usable(0..128);
            let a: Vec<_> = (0..70).map(|_| fb.alloc().unwrap()).collect();
            fb.free(a[3]).unwrap();
            assert_eq!(fb.alloc(), Some(a[3]));
        });
    }

    #[test]
    fn contiguous_runs_skip_holes_and_reserve() {
        with_bitmap(2, |fb| {
            fb.add_usable(0..8);
            fb.add_usable(20..40);
            fb.reserve(0..1);
            assert_eq!(fb.alloc_contiguous(10), Some(20));
            assert_eq!(fb.alloc_contiguous(10), Some(30));
            assert_eq!(fb.alloc_contiguous(10), None);
            assert_eq!(fb.free_frames(), 7);
            assert!(!fb.is_free(0) && fb.is_free(1));
        });
    }

    #[test]
    fn random_alloc_free_keeps_counts_exact() {
        // Deterministic xorshift: no extra dependency, reproducible failures.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        with_bitmap(8, |fb| {
            fb.add_usable(5..500);
            let mut held = Vec::new();
            for _ in 0..20_000 {
                if rnd() % 2 == 0 {
                    if let Some(f) = fb.alloc() {
                        assert!(!held.contains(&f), "frame {f} handed out twice");
                        held.push(f);
                    }
                } else if !held.is_empty() {
                    let i = (rnd() as usize) % held.len();
                    fb.free(held.swap_remove(i)).unwrap();
                }
                assert_eq!(fb.free_frames() + held.len() as u64, fb.usable_frames());
            }
        });
    }
}
