//! The task: everything the scheduler knows about one thread. The stack is
//! separate (`stacks::thread`); `current` comes from the per-CPU area, never
//! from masking RSP (which mixed stack sizes would break).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::mm::address_space::AddressSpace;

use crate::stacks::thread::ThreadStack;

pub type Pid = u32;

/// `Task::kill_code` when no fatal signal is pending.
pub const NO_KILL: i64 = i64::MIN;

/// Linux's `TASK_COMM_LEN` - 1.
pub const COMM_LEN: usize = 15;

/// A task's name, inside the task as Linux keeps `comm[TASK_COMM_LEN]`:
/// at most `COMM_LEN` bytes (cut at a character boundary), so creating a
/// thread allocates nothing for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    len: u8,
    bytes: [u8; COMM_LEN],
}

impl Comm {
    pub fn new(name: &str) -> Comm {
        let mut len = name.len().min(COMM_LEN);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; COMM_LEN];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Comm { len: len as u8, bytes }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("cut at a character boundary")
    }
}

impl core::ops::Deref for Comm {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl core::fmt::Display for Comm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.as_str())
    }
}

impl core::fmt::Debug for Comm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Running,
    Runnable,
    Sleeping,
    /// Exited; its stack stays until the parent reaps it.
    Zombie,
    /// Killed by an oops; its stack stays until reaped, so it can be read.
    Dead,
}

impl State {
    /// The letter of `ps` (Linux `task_state_to_char`).
    pub fn letter(self) -> char {
        match self {
            State::Running | State::Runnable => 'R',
            State::Sleeping => 'S',
            State::Zombie => 'Z',
            State::Dead => 'X',
        }
    }

    /// Ended: exited or killed, waiting to be reaped.
    pub fn ended(self) -> bool {
        matches!(self, State::Zombie | State::Dead)
    }

    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Running,
            1 => State::Runnable,
            2 => State::Sleeping,
            3 => State::Zombie,
            _ => State::Dead,
        }
    }
}

/// A task's state, readable without a lock (a joiner on another CPU polls
/// it); changed only under the run-queue lock of the task's CPU, or by the
/// task itself while it runs. Release/Acquire: a joiner that sees an ended
/// state also sees the exit code written before it.
pub struct StateCell(AtomicU8);

impl StateCell {
    fn new(s: State) -> Self {
        StateCell(AtomicU8::new(s as u8))
    }

    pub fn get(&self) -> State {
        State::from_u8(self.0.load(Ordering::Acquire))
    }

    pub fn set(&self, s: State) {
        self.0.store(s as u8, Ordering::Release);
    }
}

pub struct Task {
    pub pid: Pid,
    pub name: Comm,
    pub parent: Pid,
    pub stack: ThreadStack,
    /// RSP saved by `switch_to` while the task is not running.
    pub saved_rsp: u64,
    pub state: StateCell,
    /// The CPU whose run queue it is on / it last ran on. Tasks never
    /// migrate once placed, so only that CPU ever switches to them.
    pub cpu: usize,
    /// Placed by `spawn --cpu` (or inherited from a pinned parent).
    pub pinned: bool,
    /// Some CPU is executing on this task's stack: from being switched in
    /// until the next task has finished switching away from it (Linux
    /// `task_struct.on_cpu`). Its stack must not be freed before then.
    pub on_cpu: AtomicBool,
    /// Readers walking this task's stack from another task (`bt PID`, Linux
    /// `try_get_task_stack`): the stack is not freed while any remain.
    pub stack_pins: AtomicU32,
    pub exit_code: i64,
    /// Jiffies at which a sleeping task wakes (0: no timeout).
    pub wake_at: u64,
    /// What a sleeping task waits for.
    pub waiting_on: Option<super::wait::WaitKey>,
    /// The address space of a user thread's process (None: a kernel
    /// thread, which runs on the kernel's own page table). Its CR3 is
    /// loaded when the task is switched in.
    pub mm: Option<Arc<AddressSpace>>,
    /// A fatal signal is pending (its exit code; `NO_KILL` = none — an
    /// `exit_group(0)` kills its siblings with code 0): the thread ends
    /// at its next return to user mode (Linux delivers it in
    /// `exit_to_user_mode_loop`). Set by `kill PID` (-9) and when another
    /// thread of the process ends it (`exit_group`, a fatal fault).
    pub kill_code: core::sync::atomic::AtomicI64,
    /// Thread group (Linux `tgid`): the pid of the process's first thread;
    /// every thread of a process shares it (0 for kernel threads).
    pub tgid: Pid,
    /// A user data breakpoint of this thread (`watch` syscall; 0 = none):
    /// debug registers belong to the CPU, so it is armed only while the
    /// thread runs (Linux switches `thread.ptrace_bps` the same way).
    pub user_watch: AtomicU64,
    /// Its stack as stack erasing sees it: the lowest point since the last
    /// erase while switched out (Linux `current->lowest_stack`) and the
    /// deepest point an erase found used.
    pub stackleak: crate::arch::stackleak::Tracked,
    /// Running user code right now: set by the last step of every return to
    /// user mode, cleared by every entry from it. While set, the thread's
    /// kernel stack holds nothing live (the next entry starts at its top).
    pub in_user: AtomicBool,
    /// Breakpoints (#BP, #DB) this thread took in user mode; only the first
    /// few are reported.
    pub user_traps: AtomicU32,
    /// The stack size its children get (Tim Bird's `child_stack_size`):
    /// set by `child-stack-size`, inherited by every thread it spawns.
    pub child_stack_size: AtomicU64,
    /// While it runs on an extra stack: that stack's top (the innermost,
    /// if it switched twice); 0 on its own stack. `ps` shows it, the reaper
    /// gives the stacks of a task killed on one back to the pool.
    pub extra_top: AtomicU64,
    /// The task waiting in `join` for this one to end (0: none yet); its
    /// end wakes only that task.
    pub(super) joiner: AtomicU64,
    /// The next task in its run queue while it is queued (`runqueue`).
    pub(super) run_next: super::runqueue::TaskRef,
}

impl Task {
    /// Runs user code (has an address space).
    pub fn is_user(&self) -> bool {
        self.mm.is_some()
    }

    /// Bytes of its stack never used (Linux `stack_not_used`), counting
    /// what stack erasing poisoned at its deepest.
    pub fn stack_not_used(&self) -> u64 {
        self.stack_not_used_given(self.stack.not_used())
    }

    /// `stack_not_used` from a scan's count of untouched bytes.
    pub fn stack_not_used_given(&self, untouched: u64) -> u64 {
        let erased = self.stackleak.deepest().saturating_sub(self.stack.bottom + 8);
        untouched.min(erased)
    }

    /// The address space this task runs on (None: the kernel's).
    pub fn address_space(&self) -> Option<&AddressSpace> {
        self.mm.as_deref()
    }

    pub fn new(
        pid: Pid,
        name: &str,
        parent: Pid,
        stack: ThreadStack,
        saved_rsp: u64,
        cpu: usize,
        pinned: bool,
    ) -> Self {
        let name = Comm::new(name);
        let stackleak = crate::arch::stackleak::Tracked::new(stack.bottom + 8, stack.top());
        Task {
            pid,
            name,
            parent,
            stack,
            saved_rsp,
            state: StateCell::new(State::Runnable),
            cpu,
            pinned,
            on_cpu: AtomicBool::new(false),
            stack_pins: AtomicU32::new(0),
            exit_code: 0,
            wake_at: 0,
            waiting_on: None,
            mm: None,
            kill_code: core::sync::atomic::AtomicI64::new(NO_KILL),
            tgid: 0,
            user_watch: AtomicU64::new(0),
            stackleak,
            in_user: AtomicBool::new(false),
            user_traps: AtomicU32::new(0),
            child_stack_size: AtomicU64::new(crate::layout::THREAD_SIZE),
            extra_top: AtomicU64::new(0),
            joiner: AtomicU64::new(0),
            run_next: super::runqueue::TaskRef::NONE,
        }
    }
}
