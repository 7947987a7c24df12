//! Memory management: physical frames, page tables through the direct map,
//! the kernel heap and the vmap area (guarded virtual ranges for stacks),
//! address spaces of processes and the user-pointer checks (`uaccess`).

pub mod frame;
pub mod uaccess;
pub mod vmap;

#[cfg(target_os = "none")]
pub mod address_space;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod init;
#[cfg(target_os = "none")]
pub mod ktests;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod phys;
#[cfg(target_os = "none")]
pub mod vmalloc;

#[cfg(target_os = "none")]
pub use init::{heap_usage, init, HEAP_SIZE};
