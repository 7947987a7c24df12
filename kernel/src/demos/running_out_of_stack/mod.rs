//! Running out of stack, handled (docs/running-out-of-stack.md): three
//! proposals Linux never merged, made real — Keith Owens' extra-stack pool
//! under a nested block-I/O stack, Tim Bird's mixed stack sizes and Sony's
//! stack limit — and what small stacks buy in memory.

mod block_io;
mod fit;
mod limit;
mod pool;
mod sizes;

pub use block_io::{blk_io, blk_stack};
pub use fit::threads_fit;
pub use limit::{stack_limit_default, stack_limit_search};
pub use pool::{extra_overflow, extra_stacks, extrastacks};
pub use sizes::{child_stack_size, stack_sizes};

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::block::layers::{Crypt, Dev, Integrity, Linear, Loop, Mirror};
use crate::block::ramdisk::RamDisk;
use crate::block::{map, submit_bio, Bio, Depth, Op, SECTOR_SIZE};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{MAX_EXTRA_STACKS, PAGE_SIZE, THREAD_SIZE, THREAD_STACK_SIZES};
use crate::mm::phys;
use crate::println;
use crate::sched::{self, Ended, Placement, StackRequest};
use crate::stacks::{extra, thread};
use crate::sync::IrqMutex;

fn failed(e: impl core::fmt::Display) -> CmdError {
    CmdError::Failed(alloc::format!("{e}"))
}
