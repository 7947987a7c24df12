//! The bio, the block device and the generic submit path.

use alloc::boxed::Box;
use alloc::string::String;

pub use super::map::SECTOR_SIZE;

use crate::stacks::info::{self, StackKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

/// Why a bio failed (each is -EIO to its submitter, as in Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// No free extra stack at a submit that needed one.
    NoStack,
    /// Past the end of the device.
    OutOfRange,
    /// The integrity layer found a bad checksum.
    BadChecksum,
    /// Both legs of a mirror failed.
    Mirror,
}

impl BlkError {
    pub fn errno(self) -> i64 {
        -5 // EIO
    }
}

impl core::fmt::Display for BlkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let why = match self {
            BlkError::NoStack => "no free extra stack",
            BlkError::OutOfRange => "sector past the end of the device",
            BlkError::BadChecksum => "bad checksum",
            BlkError::Mirror => "both mirror legs failed",
        };
        write!(f, "-EIO ({why})")
    }
}

/// The deepest use of each kind of stack a bio's submission reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    pub task: u64,
    pub extra: u64,
    /// Nested `submit_bio` calls.
    pub levels: u32,
}

impl Depth {
    pub fn merge(&mut self, o: Depth) {
        self.task = self.task.max(o.task);
        self.extra = self.extra.max(o.extra);
        self.levels = self.levels.max(o.levels);
    }

    /// Note how deep the current stack is here.
    pub(super) fn note(&mut self) {
        let rsp = crate::arch::cpu::stack_pointer();
        if let Some(s) = info::stack_of(rsp) {
            let d = s.top - rsp;
            match s.kind {
                StackKind::Task => self.task = self.task.max(d),
                StackKind::Extra => self.extra = self.extra.max(d),
                _ => {}
            }
        }
    }
}

/// A request: one sector, read into or written from `data` (on the heap:
/// Linux forbids I/O to a vmap'ed stack, and so does this).
pub struct Bio {
    pub op: Op,
    pub sector: u64,
    pub data: Box<[u8; SECTOR_SIZE]>,
    pub depth: Depth,
    /// Nesting level of the submit currently handling it.
    level: u32,
}

impl Bio {
    pub fn new(op: Op, sector: u64) -> Bio {
        Bio { op, sector, data: Box::new([0; SECTOR_SIZE]), depth: Depth::default(), level: 0 }
    }

    /// A bio for the device below (Linux `bio_clone`): same operation,
    /// `sector`, a copy of the data, one level deeper.
    pub fn clone_to(&self, sector: u64) -> Bio {
        Bio { op: self.op, sector, data: self.data.clone(), depth: Depth::default(), level: self.level }
    }
}

/// A block device: something `submit_bio` can hand a bio to (Linux
/// `block_device_operations.submit_bio`).
pub trait BlockDevice: Send + Sync {
    fn name(&self) -> String;
    fn sectors(&self) -> u64;
    /// Handle `bio`; stacked drivers resubmit through `submit_bio`.
    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError>;
}

/// The generic submit path (Linux `submit_bio` → the driver's hook), and
/// the RFC's critical point.
pub fn submit_bio(dev: &dyn BlockDevice, bio: &mut Bio) -> Result<(), BlkError> {
    probe_stack();
    bio.level += 1;
    bio.depth.levels = bio.depth.levels.max(bio.level);
    bio.depth.note();
    let r = if bio.sector >= dev.sectors() {
        Err(BlkError::OutOfRange)
    } else {
        match crate::sched::task_stack::call_checked(|| encode(dev.submit(bio))) {
            Ok(code) => decode(code),
            Err(_) => Err(BlkError::NoStack),
        }
    };
    bio.level -= 1;
    r
}

/// Touch the stack below this level's frames before going on, so that an
/// overflow of the nested stack (with the pool off) lands here, holding no
/// lock — not inside the heap allocator a driver calls next, whose lock an
/// oops would then die holding (and panic).
#[inline(never)]
fn probe_stack() {
    let mut probe = [0u8; 896];
    core::hint::black_box(&mut probe);
}

const ERRORS: [BlkError; 4] = [BlkError::NoStack, BlkError::OutOfRange, BlkError::BadChecksum, BlkError::Mirror];

/// The result as one word, to cross `call_on_stack`.
fn encode(r: Result<(), BlkError>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(e) => 1 + ERRORS.iter().position(|&x| x == e).expect("every error is listed") as i64,
    }
}

fn decode(code: i64) -> Result<(), BlkError> {
    match code {
        0 => Ok(()),
        n => Err(ERRORS[(n - 1) as usize]),
    }
}
