//! A small block layer, for the extra-stack pool to save (Keith Owens' RFC:
//! "somebody will always build an I/O configuration that requires multiple
//! levels of nested I/O processing").
//!
//! A `Bio` (one sector) goes through one generic path, `submit_bio`, to a
//! device's `submit`. Stacked drivers (`layers`: dm-linear, dm-crypt, an
//! integrity layer, a RAID1 mirror, loop over a file) remap or transform
//! it and call `submit_bio` again for the device below — the recursion
//! that eats the stack; a RAM disk (`ramdisk`) is the bottom, completing
//! each bio from its own thread while the submitter sleeps.
//!
//! `submit_bio` is the critical point of the RFC: it may sleep and may
//! fail, so it asks `sched::task_stack::call_checked` to continue on an extra
//! stack when the current one is getting full, and fails with -EIO when
//! none is free.

#[cfg(target_os = "none")]
mod bio;
#[cfg(target_os = "none")]
pub mod layers;
pub mod map;
#[cfg(target_os = "none")]
pub mod ramdisk;

#[cfg(target_os = "none")]
pub use bio::{submit_bio, Bio, BlkError, BlockDevice, Depth, Op};
pub use map::SECTOR_SIZE;
