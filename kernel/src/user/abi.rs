//! The system-call ABI, shared word for word by the kernel and by `ulib`
//! (which includes this file): call numbers, error numbers, the structures
//! passed by pointer. Linux's numbers wherever Linux has the call; the
//! calls that exist only to show kernel stacks start at 1000.
//!
//! Calling convention (Linux x86-64): number in RAX, arguments in RDI, RSI,
//! RDX, R10, R8, R9; `syscall` clobbers RCX (return RIP) and R11 (RFLAGS);
//! the result comes back in RAX, `-errno` on failure.

/// `write(fd, buf, len)`: fd 1 and 2 are the console.
pub const SYS_WRITE: u64 = 1;
/// `munmap(addr, len)`: unmap the pages of `[addr, addr + len)`; every
/// CPU running a thread of this process drops them from its TLB first.
pub const SYS_MUNMAP: u64 = 11;
/// `sched_yield()`.
pub const SYS_SCHED_YIELD: u64 = 24;
/// `nanosleep(const struct timespec *req, struct timespec *rem)`.
pub const SYS_NANOSLEEP: u64 = 35;
/// `getpid()`.
pub const SYS_GETPID: u64 = 39;
/// `exit(code)`: ends the calling thread.
pub const SYS_EXIT: u64 = 60;
/// `gettid()`: the calling thread's id (`getpid` is the process's).
pub const SYS_GETTID: u64 = 186;
/// `clock_gettime(clockid, struct timespec *tp)`; only `CLOCK_MONOTONIC`.
pub const SYS_CLOCK_GETTIME: u64 = 228;
/// `exit_group(code)`: ends every thread of the process.
pub const SYS_EXIT_GROUP: u64 = 231;

/// `kstack_use(bytes)`: recurse in the kernel until about `bytes` of the
/// thread stack are in use; returns the deepest depth reached (bytes below
/// the stack top). Past `THREAD_SIZE` it overflows into the guard page.
/// With `KSTACK_GIVE_BACK` in `bytes`, a dynamic kernel stack first gives
/// back its pages below the syscall's frames, so the recursion grows it
/// again (the entry sweep's growth-in-a-syscall trigger).
pub const SYS_KSTACK_USE: u64 = 1000;
pub const KSTACK_GIVE_BACK: u64 = 1 << 62;
/// `stack_info()`: the kernel stack depth (bytes below the thread stack's
/// top) at which the syscall's dispatcher runs: the syscall frame plus the
/// random offset.
pub const SYS_STACK_INFO: u64 = 1001;
/// `watch(addr)`: arm a hardware write breakpoint on the 8 user bytes at
/// `addr` for this thread (Linux does it through ptrace/perf).
pub const SYS_WATCH: u64 = 1002;
/// `stackleak_plant(secret)`: leave `secret` in dead kernel stack below the
/// syscall's frame (what a careless syscall leaves behind).
pub const SYS_STACKLEAK_PLANT: u64 = 1003;
/// `stackleak_find(secret)`: search the dead part of the thread stack for
/// `secret`; returns its depth below the top, or 0 if it is not there.
pub const SYS_STACKLEAK_FIND: u64 = 1004;

/// `set_return(addr, ss)`: the syscall returns to `addr` instead of the
/// instruction after `syscall`, and with stack selector `ss` if it is not 0
/// — what Linux's `rt_sigreturn` does to the saved frame from a signal
/// frame. RCX then no longer equals the return RIP, so the kernel must
/// return by IRET. A bad `ss` makes that IRET fault in the kernel (Linux
/// `fixup_bad_iret` turns it into the process's #GP); a non-canonical
/// `addr` faults on Intel in the kernel too, on AMD (and in QEMU's TCG) at
/// the first user instruction fetch.
pub const SYS_SET_RETURN_IP: u64 = 1005;

/// `clone_thread(entry, stack_top, arg)`: a new thread in this process,
/// starting at `entry(arg)` on the user stack ending at `stack_top`, with
/// its own kernel stack (Linux `clone(CLONE_VM | CLONE_THREAD | ...)`).
/// Returns its thread id.
pub const SYS_CLONE_THREAD: u64 = 1006;

/// `lkdtm_access_userspace(addr)`: the kernel reads the 8 bytes at user
/// address `addr` *directly*, not through the checked copy every other
/// call uses — the bug Linux's `lkdtm ACCESS_USERSPACE` plants. With SMAP
/// the read faults and the kernel oopses (the thread dies); without it the
/// value comes back.
pub const SYS_LKDTM_ACCESS_USERSPACE: u64 = 1007;
/// `lkdtm_exec_userspace(addr)`: the kernel calls the user function at
/// `addr` in ring 0 (Linux `lkdtm EXEC_USERSPACE`). With SMEP the fetch
/// faults and the kernel oopses.
pub const SYS_LKDTM_EXEC_USERSPACE: u64 = 1008;

/// Linux errno values (returned negated).
pub const EFAULT: i64 = 14;
pub const EBADF: i64 = 9;
pub const EINTR: i64 = 4;
pub const EINVAL: i64 = 22;
pub const ENOSYS: i64 = 38;
pub const ENOMEM: i64 = 12;
pub const EAGAIN: i64 = 11;

/// `clock_gettime`'s only clock.
pub const CLOCK_MONOTONIC: u64 = 1;

/// Linux `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// Where a program finds its arguments: RDI = address, RSI = length of
/// one string on its stack, the words after the program name separated by
/// single spaces (no argv array: the programs parse what they need).
pub const ARGS_MAX: usize = 256;
