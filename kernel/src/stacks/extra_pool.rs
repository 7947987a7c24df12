//! The extra-stack pool's bookkeeping, apart from any memory (host-tested):
//! the counting semaphore of free stacks and the counts `extra-stacks`
//! prints. The stacks themselves are `stacks/extra.rs`.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A counting semaphore with only what the RFC uses: `down_trylock` (never
/// sleeps; the submit path must not wait for a stack) and `up`.
pub struct Semaphore(AtomicUsize);

impl Semaphore {
    pub const fn new(count: usize) -> Self {
        Semaphore(AtomicUsize::new(count))
    }

    /// Take one unit if there is one. Returns true when taken (Linux's
    /// `down_trylock` returns 0 then).
    pub fn down_trylock(&self) -> bool {
        self.0.try_update(Ordering::Acquire, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    pub fn up(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// What the pool has done; `extra-stacks` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub in_use: usize,
    /// Most stacks in use at once.
    pub high_water: usize,
    /// Switches onto an extra stack.
    pub switches: u64,
    /// Submits failed with -EIO for want of a free stack.
    pub eio: u64,
}

/// Why a new total was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeError {
    /// Below the number in use: those cannot be taken away.
    InUse { asked: usize, in_use: usize },
    /// Above what the registry holds.
    TooMany { asked: usize, max: usize },
}

impl core::fmt::Display for ResizeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ResizeError::InUse { asked, in_use } => {
                write!(f, "cannot shrink to {asked}: {in_use} extra stacks are in use")
            }
            ResizeError::TooMany { asked, max } => write!(f, "cannot grow to {asked}: at most {max} extra stacks"),
        }
    }
}

impl Counts {
    pub fn free(&self) -> usize {
        self.total - self.in_use
    }

    /// A stack was taken (after `down_trylock` succeeded).
    pub fn took(&mut self) {
        assert!(self.in_use < self.total, "took a stack the pool does not have");
        self.in_use += 1;
        self.high_water = self.high_water.max(self.in_use);
        self.switches += 1;
    }

    /// A stack came back.
    pub fn gave_back(&mut self) {
        assert!(self.in_use > 0, "gave back a stack nobody took");
        self.in_use -= 1;
    }

    /// None was free: the submit fails with -EIO.
    pub fn refused(&mut self) {
        self.eio += 1;
    }

    /// Stacks to create (positive) or destroy (negative) to reach `asked`.
    pub fn resize(&self, asked: usize, max: usize) -> Result<isize, ResizeError> {
        if asked > max {
            return Err(ResizeError::TooMany { asked, max });
        }
        if asked < self.in_use {
            return Err(ResizeError::InUse { asked, in_use: self.in_use });
        }
        Ok(asked as isize - self.total as isize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_semaphore_counts_down_to_zero_and_refuses() {
        let s = Semaphore::new(2);
        assert!(s.down_trylock());
        assert!(s.down_trylock());
        assert!(!s.down_trylock());
        assert_eq!(s.count(), 0);
        s.up();
        assert!(s.down_trylock());
    }

    #[test]
    fn high_water_switches_and_eio_are_counted() {
        let mut c = Counts { total: 3, ..Counts::default() };
        c.took();
        c.took();
        c.gave_back();
        c.took();
        c.refused();
        assert_eq!((c.in_use, c.high_water, c.switches, c.eio, c.free()), (2, 2, 3, 1, 1));
    }

    #[test]
    fn a_total_below_the_number_in_use_is_refused() {
        let mut c = Counts { total: 4, ..Counts::default() };
        c.took();
        c.took();
        assert_eq!(c.resize(1, 64), Err(ResizeError::InUse { asked: 1, in_use: 2 }));
        assert_eq!(c.resize(2, 64), Ok(-2));
        assert_eq!(c.resize(6, 64), Ok(2));
        assert_eq!(c.resize(65, 64), Err(ResizeError::TooMany { asked: 65, max: 64 }));
        assert_eq!(alloc::format!("{}", c.resize(0, 64).unwrap_err()), "cannot shrink to 0: 2 extra stacks are in use");
    }

    #[test]
    #[should_panic(expected = "does not have")]
    fn taking_more_than_the_total_is_a_bug() {
        let mut c = Counts { total: 1, ..Counts::default() };
        c.took();
        c.took();
    }
}
