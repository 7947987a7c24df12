//! Range bookkeeping of the vmap area (Linux's vmalloc space).
//!
//! Hands out page-aligned virtual ranges, each surrounded by its own guard
//! pages that are never mapped, and takes them back. Pure logic: the page
//! tables are touched by `mm::vmalloc`, which owns one `VmapSpace`.

use alloc::collections::BTreeMap;
use core::fmt;

use crate::layout::PAGE_SIZE;

/// One allocation: `[start, start + size)` is mapped; the guards are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmRange {
    pub start: u64,
    pub size: u64,
    pub guard_below: u64,
    pub guard_above: u64,
}

impl VmRange {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
    /// First byte of the guard below (lowest address the allocation owns).
    pub fn reserved_start(&self) -> u64 {
        self.start - self.guard_below
    }
    /// End of the guard above (exclusive).
    pub fn reserved_end(&self) -> u64 {
        self.end() + self.guard_above
    }
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end()).contains(&addr)
    }
    /// Whether `addr` is in one of this range's guard pages.
    pub fn in_guard(&self, addr: u64) -> bool {
        (self.reserved_start()..self.start).contains(&addr) || (self.end()..self.reserved_end()).contains(&addr)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmapError {
    /// Size or guards not a positive multiple of PAGE_SIZE, or a bad alignment.
    BadRequest,
    /// No hole in the area is large enough.
    NoSpace,
    /// `free` of an address that does not start an allocation.
    NotAllocated(u64),
    /// Out of physical frames while mapping.
    OutOfMemory,
    /// Every slot of the thread-stack registry is taken (`MAX_THREAD_STACKS`).
    TooManyStacks,
}

impl fmt::Display for VmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmapError::BadRequest => write!(f, "size, guard or alignment is not page-granular"),
            VmapError::NoSpace => write!(f, "vmap area exhausted"),
            VmapError::NotAllocated(a) => write!(f, "{a:#x} does not start a vmap allocation"),
            VmapError::OutOfMemory => write!(f, "out of physical frames"),
            VmapError::TooManyStacks => {
                write!(f, "too many thread stacks (MAX_THREAD_STACKS = {})", crate::layout::MAX_THREAD_STACKS)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmapStats {
    pub areas: usize,
    /// Bytes backed by frames.
    pub mapped: u64,
    /// Bytes of address space taken, guards included.
    pub reserved: u64,
}

pub struct VmapSpace {
    base: u64,
    end: u64,
    /// Allocations keyed by `reserved_start()`, so the owner of any address,
    /// guard pages included, is the last key at or below it.
    areas: BTreeMap<u64, VmRange>,
}

impl VmapSpace {
    pub const fn new(base: u64, size: u64) -> Self {
        VmapSpace { base, end: base + size, areas: BTreeMap::new() }
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// Reserve `size` bytes aligned to `align`, with unmapped guards of
    /// `guard_below` and `guard_above` bytes around them. First fit.
    pub fn alloc(&mut self, size: u64, align: u64, guard_below: u64, guard_above: u64) -> Result<VmRange, VmapError> {
        let page_granular = |v: u64| v.is_multiple_of(PAGE_SIZE);
        if size == 0
            || !page_granular(size)
            || !page_granular(guard_below)
            || !page_granular(guard_above)
            || !align.is_power_of_two()
            || align < PAGE_SIZE
        {
            return Err(VmapError::BadRequest);
        }
        let mut cursor = self.base;
        let fits_before = |cursor: u64, limit: u64| -> Option<VmRange> {
            let start = cursor.checked_add(guard_below)?.checked_next_multiple_of(align)?;
            let end = start.checked_add(size)?.checked_add(guard_above)?;
            (end <= limit).then_some(VmRange { start, size, guard_below, guard_above })
        };
        for area in self.areas.values() {
            if let Some(r) = fits_before(cursor, area.reserved_start()) {
                self.areas.insert(r.reserved_start(), r);
                return Ok(r);
            }
            cursor = area.reserved_end();
        }
        let r = fits_before(cursor, self.end).ok_or(VmapError::NoSpace)?;
        self.areas.insert(r.reserved_start(), r);
        Ok(r)
    }

    /// Give back the allocation that starts at `start`.
    pub fn free(&mut self, start: u64) -> Result<VmRange, VmapError> {
        match self.find(start) {
            Some(r) if r.start == start => Ok(self.areas.remove(&r.reserved_start()).expect("found")),
            _ => Err(VmapError::NotAllocated(start)),
        }
    }

    /// The allocation whose mapped part or guard pages hold `addr`.
    pub fn find(&self, addr: u64) -> Option<VmRange> {
        let (_, r) = self.areas.range(..=addr).next_back()?;
        (addr < r.reserved_end()).then_some(*r)
    }

    pub fn stats(&self) -> VmapStats {
        self.areas.values().fold(VmapStats::default(), |s, r| VmapStats {
            areas: s.areas + 1,
            mapped: s.mapped + r.size,
            reserved: s.reserved + (r.reserved_end() - r.reserved_start()),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &VmRange> {
        self.areas.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const P: u64 = PAGE_SIZE;

    fn space() -> VmapSpace {
        VmapSpace::new(0x1000_0000, 1 << 20)
    }

    #[test]
    fn guards_surround_every_allocation_and_never_overlap() {
        let mut s = space();
        let a = s.alloc(4 * P, P, P, P).unwrap();
        let b = s.alloc(2 * P, P, P, P).unwrap();
        assert_eq!(a.start, 0x1000_0000 + P);
        assert!(b.reserved_start() >= a.reserved_end());
        assert!(a.in_guard(a.start - 1) && a.in_guard(a.end()));
        assert!(!a.in_guard(a.start) && a.contains(a.end() - 1));
        assert_eq!(s.stats(), VmapStats { areas: 2, mapped: 6 * P, reserved: 10 * P });
    }

    #[test]
    fn alignment_is_honoured_for_thread_stacks() {
        let mut s = space();
        let r = s.alloc(4 * P, 4 * P, P, P).unwrap();
        assert_eq!(r.start % (4 * P), 0);
        assert!(r.reserved_start() >= s.base());
    }

    #[test]
    fn freed_ranges_are_reused_and_unknown_frees_fail() {
        let mut s = space();
        let a = s.alloc(P, P, P, P).unwrap();
        let _b = s.alloc(P, P, P, P).unwrap();
        assert_eq!(s.free(a.start), Ok(a));
        assert_eq!(s.free(a.start), Err(VmapError::NotAllocated(a.start)));
        assert_eq!(s.alloc(P, P, P, P).unwrap(), a);
    }

    #[test]
    fn bad_requests_and_exhaustion_are_errors() {
        let mut s = space();
        assert_eq!(s.alloc(0, P, P, P), Err(VmapError::BadRequest));
        assert_eq!(s.alloc(100, P, P, P), Err(VmapError::BadRequest));
        assert_eq!(s.alloc(P, 3 * P, P, P), Err(VmapError::BadRequest));
        assert_eq!(s.alloc(P, P, 5, P), Err(VmapError::BadRequest));
        assert_eq!(s.alloc(1 << 20, P, P, P), Err(VmapError::NoSpace));
        assert_eq!(s.alloc((1 << 20) - 2 * P, P, P, P).map(|r| r.size), Ok((1 << 20) - 2 * P));
        assert_eq!(s.alloc(P, P, 0, 0), Err(VmapError::NoSpace));
    }

    #[test]
    fn find_reports_the_owner_of_guard_pages() {
        let mut s = space();
        let a = s.alloc(4 * P, P, P, 0).unwrap();
        assert_eq!(s.find(a.start - 8), Some(a));
        assert_eq!(s.find(a.start + 100), Some(a));
        assert_eq!(s.find(a.end()), None);
    }

    #[test]
    fn random_alloc_free_never_overlaps() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut s = space();
        let mut held: Vec<VmRange> = Vec::new();
        for _ in 0..5_000 {
            if rnd() % 3 != 0 {
                let size = (1 + rnd() % 8) * P;
                let align = P << (rnd() % 3);
                if let Ok(r) = s.alloc(size, align, P, rnd() % 2 * P) {
                    assert_eq!(r.start % align, 0);
                    assert!(r.reserved_start() >= s.base() && r.reserved_end() <= s.end());
                    for h in &held {
                        assert!(r.reserved_end() <= h.reserved_start() || h.reserved_end() <= r.reserved_start());
                    }
                    held.push(r);
                }
            } else if !held.is_empty() {
                let i = rnd() as usize % held.len();
                let r = held.swap_remove(i);
                assert_eq!(s.free(r.start), Ok(r));
            }
            assert_eq!(s.stats().areas, held.len());
        }
    }
}
