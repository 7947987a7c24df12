//! The running thread's stack as the code it runs sees it (Linux
//! `include/linux/sched/task_stack.h`): the extra-stack pool's calls, given
//! the current thread (`stacks::extra` is below the scheduler and cannot
//! ask who runs).

use crate::stacks::extra::{self, Caller, NoExtraStack};

fn caller(task: &super::Task) -> Caller<'_> {
    Caller { name: &task.name, pid: task.pid, stack: (task.stack.bottom, task.stack.top()), extra_top: &task.extra_top }
}

/// `stacks::extra::call_checked` for the running thread: run `f` here, on
/// an extra stack if too little of this one is left, or not at all (`Err`).
pub fn call_checked(f: impl FnOnce() -> i64) -> Result<i64, NoExtraStack> {
    extra::call_checked(super::current().map(caller), f)
}

/// Run `f` on an extra stack whatever the depth (`Err`: none free).
pub fn call_on_extra_stack(f: impl FnOnce() -> i64) -> Result<i64, NoExtraStack> {
    let task = super::current().expect("extra stacks are for threads");
    extra::call_on_extra_stack(caller(task), f)
}
