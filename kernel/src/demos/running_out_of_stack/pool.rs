//! extra-stacks: the pool (Owens' RFC): its size, threshold, counts, overflow.

use super::*;

/// `extra-stacks [N | on | off | threshold BYTES]`.
pub fn extra_stacks(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage_and(alloc::format!(" (N 0 to {MAX_EXTRA_STACKS})"));
    match args {
        [] => {}
        ["on"] => extra::set_enabled(true),
        ["off"] => extra::set_enabled(false),
        ["threshold", b] => extra::set_threshold(cmdline::number("BYTES", b, 0..=THREAD_SIZE)?),
        [n] if n.bytes().all(|b| b.is_ascii_digit()) => {
            let n = cmdline::number("N", n, 0..=MAX_EXTRA_STACKS as u64)? as usize;
            extra::resize(n).map_err(|e| match e {
                extra::Resize::Refused(r) => failed(r),
                extra::Resize::NoMemory(m) => failed(m),
            })?;
        }
        _ => return Err(usage().into()),
    }
    show_pool();
    Ok(())
}

fn show_pool() {
    let s = extra::stats();
    let c = s.counts;
    println!(
        "extra stacks: {} total, {} free, {} in use, high-water {}, {} switches, {} -EIO; check {}, threshold {} bytes",
        c.total,
        c.free(),
        c.in_use,
        c.high_water,
        c.switches,
        c.eio,
        if s.enabled { "on" } else { "off" },
        s.threshold
    );
    // One pool: any CPU takes any free stack. The CPU a stack was dealt to
    // (`extrastacks PER_CPU` deals them in turn) only sizes it, so a row
    // names none — it once said `cpu 1` of a stack CPU 0 had just used.
    for r in extra::rows() {
        println!(
            "  {:016x}-{:016x} {:<6} deepest use {} bytes",
            r.bottom,
            r.top - 1,
            if r.in_use { "in use" } else { "free" },
            r.deepest
        );
    }
}

/// `extrastacks PER_CPU [THRESHOLD]`: boot parameter (first on the command
/// line): PER_CPU extra stacks for each online CPU, and the threshold.
pub fn extrastacks(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage();
    let (per_cpu, threshold) = match args {
        [n] => (n, None),
        [n, t] => (n, Some(t)),
        _ => return Err(usage().into()),
    };
    let cpus = crate::arch::percpu::online_cpus().count() as u64;
    let per_cpu = cmdline::number("PER_CPU", per_cpu, 0..=MAX_EXTRA_STACKS as u64 / cpus)?;
    if let Some(t) = threshold {
        extra::set_threshold(cmdline::number("THRESHOLD", t, 0..=THREAD_SIZE)?);
    }
    // Down to none first, so the new ones are dealt to the CPUs in turn.
    extra::resize(0).and_then(|()| extra::resize((per_cpu * cpus) as usize)).map_err(|e| {
        failed(match e {
            extra::Resize::Refused(r) => alloc::format!("{r}"),
            extra::Resize::NoMemory(m) => alloc::format!("{m}"),
        })
    })?;
    show_pool();
    Ok(())
}

/// Recurse with 256 bytes a level, forever: the guard page ends it.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_forever(depth: u64) -> u64 {
    let mut frame = [depth as u8; 256];
    black_box(&mut frame);
    recurse_forever(depth + 1).wrapping_add(u64::from(black_box(frame)[0]))
}

fn extra_overflow_thread(_: u64) -> i64 {
    match crate::sched::task_stack::call_on_extra_stack(|| recurse_forever(0) as i64) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// `extra-overflow`: a thread takes an extra stack and recurses into its
/// guard page: `BUG: EXTRA stack guard page was hit`, the thread dies, and
/// its reaper gives the stack back to the pool.
pub fn extra_overflow(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    let pid = sched::spawn("extra-overflow", extra_overflow_thread, 0).map_err(failed)?;
    match sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))? {
        Ended::Killed => println!("extra-overflow: thread extra-overflow ({pid}) was killed and reaped"),
        Ended::Exited(1) => return Err(failed("no free extra stack")),
        Ended::Exited(c) => return Err(failed(alloc::format!("thread exited with {c}"))),
    }
    show_pool();
    Ok(())
}
