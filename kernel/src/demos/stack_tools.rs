//! The stack tracer's commands (docs/stack-tools.md), in Linux's shapes:
//! `stack_tracer_enabled`, the `stack_trace` table, `stack_max_size`, the
//! `stacktrace` boot parameter and `stack_trace_filter`.

use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::CmdResult;
use crate::debug::stack_tracer::{self, KINDS};
use crate::debug::symbols::{Pb, Ps};
use crate::println;

/// `stack-tracer on|off|reset`.
pub fn stack_tracer(args: &[&str]) -> CmdResult {
    match args {
        ["on"] => stack_tracer::set_on(true),
        ["off"] => stack_tracer::set_on(false),
        ["reset"] => stack_tracer::reset(),
        _ => return Err(ArgError::usage().into()),
    }
    println!("stack-tracer: {}", if stack_tracer::is_on() { "on" } else { "off" });
    Ok(())
}

/// `stacktrace`: the boot parameter's job, from the command line: start
/// tracing before anything else runs.
pub fn stacktrace(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    stack_tracer::reset();
    stack_tracer::set_on(true);
    println!("stack-tracer: on");
    Ok(())
}

/// `stacktrace-filter GLOB|off`.
pub fn stacktrace_filter(args: &[&str]) -> CmdResult {
    match args {
        ["off"] => stack_tracer::set_filter(None),
        [glob] => stack_tracer::set_filter(Some(glob)),
        [] => {}
        _ => return Err(ArgError::usage().into()),
    }
    println!("stacktrace-filter: {}", stack_tracer::current_filter().unwrap_or("(none: every function)"));
    Ok(())
}

fn kinds(args: &[&str]) -> Result<alloc::vec::Vec<usize>, ArgError> {
    match args {
        [] => Ok((0..KINDS.len()).collect()),
        [kind] => match KINDS.iter().position(|k| k.eq_ignore_ascii_case(kind)) {
            Some(k) => Ok(alloc::vec![k]),
            None => Err(ArgError::Invalid(alloc::format!("no stack kind '{kind}'; kinds: {}", KINDS.join(" ")))),
        },
        [_, extra, ..] => Err(ArgError::Unexpected((*extra).into())),
    }
}

/// `stack-trace [KIND]`: Linux's table for each kind with a record.
pub fn stack_trace(args: &[&str]) -> CmdResult {
    for k in kinds(args)? {
        let Some(rec) = stack_tracer::record(k) else {
            println!("stack-trace: {}: record busy (another CPU is writing it)", KINDS[k]);
            continue;
        };
        if rec.entries == 0 {
            println!("stack-trace: {}: nothing recorded", KINDS[k]);
            continue;
        }
        println!("stack-trace: {} stack, recorded on CPU {}", KINDS[k], rec.cpu);
        println!("        Depth    Size   Location    ({} entries)", rec.entries);
        println!("        -----    ----   --------");
        for i in 0..rec.entries {
            let size = rec.depth[i] - if i + 1 < rec.entries { rec.depth[i + 1] } else { 0 };
            // Entry 0 is inside the function entered; the others are
            // return addresses (which may sit just past a function whose
            // last instruction is a call that does not return: `%pB`).
            if i == 0 {
                println!("{i:3}) {:8}   {size:5}   {}", rec.depth[i], Ps(rec.location[i]));
            } else {
                println!("{i:3}) {:8}   {size:5}   {}", rec.depth[i], Pb(rec.location[i]));
            }
        }
    }
    Ok(())
}

/// `stack-max-size [KIND]` (Linux's `stack_max_size`: the task stacks').
pub fn stack_max_size(args: &[&str]) -> CmdResult {
    let which = if args.is_empty() { alloc::vec![0] } else { kinds(args)? };
    for k in which {
        if args.is_empty() {
            println!("{}", stack_tracer::max_size(k));
        } else {
            println!("{} {}", KINDS[k], stack_tracer::max_size(k));
        }
    }
    Ok(())
}
