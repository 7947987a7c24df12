//! Processes (Linux `fs/binfmt_elf.c:load_elf_binary`, `start_thread`):
//! a fresh address space, the program's segments mapped from its ELF image,
//! a user stack with an unmapped guard page under it, the arguments on
//! that stack, and a thread that enters ring 3 at the ELF entry point.
//!
//! A process here is one address space and the threads that share it
//! (one, from `run`); each thread has its own 16 KiB kernel stack. The
//! address space is freed with the last thread (when it is reaped).

use alloc::boxed::Box;
use alloc::sync::Arc;

use x86_64::structures::paging::PageTableFlags;

use super::abi::ARGS_MAX;
use super::elf::{self, ElfError};
use super::programs;
use crate::arch::process::{enter_user, frame_slot_of, user_regs};
use crate::layout::{PAGE_SIZE, USER_STACK_BOTTOM, USER_STACK_TOP};
use crate::mm::address_space::AddressSpace;
use crate::sched::{self, Pid, Placement};

/// Why `run` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    NoSuchProgram,
    BadImage(ElfError),
    /// No memory for the address space, a page or the thread stack.
    OutOfMemory,
    /// Every thread-stack slot is taken (`MAX_THREAD_STACKS`).
    TooManyThreads,
    /// A new thread of a process that is being killed.
    KillPending,
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RunError::NoSuchProgram => write!(f, "no such program"),
            RunError::BadImage(e) => write!(f, "bad ELF image: {e}"),
            RunError::OutOfMemory => write!(f, "out of memory"),
            RunError::TooManyThreads => write!(f, "too many threads"),
            RunError::KillPending => write!(f, "the process is being killed"),
        }
    }
}

/// Why a thread's kernel stack could not be had.
fn stack_error(e: sched::SpawnError) -> RunError {
    match e {
        sched::SpawnError::Stack(crate::mm::vmap::VmapError::TooManyStacks) => RunError::TooManyThreads,
        sched::SpawnError::Stack(_) => RunError::OutOfMemory,
        sched::SpawnError::KillPending => RunError::KillPending,
    }
}

/// What the new thread needs to enter user mode.
struct Start {
    entry: u64,
    user_rsp: u64,
    args: u64,
    args_len: u64,
}

/// Load `image` into a new address space; returns it and the start state.
fn load(image: &[u8], args: &str) -> Result<(AddressSpace, Start), RunError> {
    let plan = elf::plan(image).map_err(RunError::BadImage)?;
    let mm = AddressSpace::new().map_err(|_| RunError::OutOfMemory)?;
    for seg in &plan.segments {
        let mut flags = PageTableFlags::empty();
        if seg.writable {
            flags |= PageTableFlags::WRITABLE;
        }
        if !seg.executable {
            flags |= PageTableFlags::NO_EXECUTE;
        }
        let (start, end) = seg.pages();
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            mm.map_zeroed(page, flags).map_err(|_| RunError::OutOfMemory)?;
        }
        let bytes = &image[seg.file_offset as usize..(seg.file_offset + seg.file_size) as usize];
        mm.write_as(seg.vaddr, bytes, false).expect("segment pages were just mapped");
    }
    let (lo, hi) = plan.span();
    mm.set_code(lo, hi);
    // The user stack; the page under USER_STACK_BOTTOM stays unmapped.
    let stack = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for page in (USER_STACK_BOTTOM..USER_STACK_TOP).step_by(PAGE_SIZE as usize) {
        mm.map_zeroed(page, stack).map_err(|_| RunError::OutOfMemory)?;
    }
    // Arguments at the top of the stack; below them a zero "return
    // address", so `_start` begins with RSP + 8 16-byte aligned (the ABI's
    // state at function entry).
    let args = &args.as_bytes()[..args.len().min(ARGS_MAX)];
    let args_at = (USER_STACK_TOP - args.len() as u64) & !15;
    mm.write(args_at, args).expect("stack pages were just mapped");
    let user_rsp = args_at - 16 - 8;
    mm.write(user_rsp, &0u64.to_le_bytes()).expect("stack pages were just mapped");
    Ok((mm, Start { entry: plan.entry, user_rsp, args: args_at, args_len: args.len() as u64 }))
}

/// Start program `name` with `args` in a new process; returns its pid.
pub fn run(name: &str, args: &str, placement: Placement) -> Result<Pid, RunError> {
    let image = programs::find(name).ok_or(RunError::NoSuchProgram)?;
    let (mm, start) = load(image, args)?;
    let start = Box::into_raw(Box::new(start)) as u64;
    sched::spawn_user(name, Arc::new(mm), None, start_user, start, placement).map_err(|e| {
        // SAFETY: the thread was not created, so the box is still ours.
        drop(unsafe { Box::from_raw(start as *mut Start) });
        stack_error(e)
    })
}

/// Another thread of the current process, entering user mode at `entry`
/// with RSP `stack_top - 8` (as if called) and `arg` in RDI.
pub fn spawn_thread(entry: u64, stack_top: u64, arg: u64) -> Result<Pid, RunError> {
    let me = sched::current().expect("a running thread");
    let mm = me.mm.clone().expect("a user thread");
    let start = Start { entry, user_rsp: stack_top - 8, args: arg, args_len: 0 };
    let start = Box::into_raw(Box::new(start)) as u64;
    sched::spawn_user(&me.name, mm, Some(me.tgid), start_user, start, Placement::Any).map_err(|e| {
        // SAFETY: the thread was not created, so the box is still ours.
        drop(unsafe { Box::from_raw(start as *mut Start) });
        stack_error(e)
    })
}

/// The new thread's kernel half: build the user frame at the top of its
/// own stack and leave for ring 3 through the common exit path.
fn start_user(arg: u64) -> i64 {
    // SAFETY: `run` passed a boxed `Start` and gave up ownership.
    let start = *unsafe { Box::from_raw(arg as *mut Start) };
    let top = sched::current().expect("a running thread").stack.top();
    let slot = frame_slot_of(top);
    // SAFETY: `spawn_user` kept the top REGS_SIZE bytes of this stack free
    // for exactly this frame; nothing below it is needed after the jump.
    unsafe {
        slot.write(user_regs(start.entry, start.user_rsp, start.args, start.args_len));
        enter_user(slot)
    }
}
