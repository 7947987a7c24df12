//! `./x checkstack [OPTIONS]` (the kernel ELF is found by the runner).

use std::process::ExitCode;

use clap::Parser;

use checkstack::graph::Graph;
use checkstack::{checkstack_line, Kernel};
use tristack::stacks::layout::{EXCEPTION_STKSZ, IRQ_STACK_SIZE, THREAD_SIZE};

/// `println!` that ends the program quietly when stdout is closed early
/// (`./x checkstack | head`), instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("writing to stdout: {e}");
        }
    }};
}

#[derive(Parser)]
#[command(about = "Stack frames of the tristack kernel: checkstack.pl's list, the compiler's figures, \
                   a frame-size gate and the worst case per entry point")]
struct Args {
    /// The kernel ELF (`cargo run -- --kernel-elf` prints its path).
    kernel_elf: std::path::PathBuf,
    /// List functions whose frame is at least this many bytes (checkstack.pl: 100).
    #[arg(long, default_value_t = 100)]
    threshold: u64,
    /// Fail when a function's frame exceeds N bytes (CONFIG_FRAME_WARN),
    /// except the functions named in --allow.
    #[arg(long, value_name = "N")]
    frame_warn: Option<u64>,
    /// One demangled function name per line (lines starting with '#' are
    /// comments): frames the gate accepts (the deliberate hogs of the demos).
    #[arg(long, value_name = "FILE")]
    allow: Option<std::path::PathBuf>,
    /// The worst case of each entry point against the size of its stack.
    #[arg(long)]
    entries: bool,
    /// Draw the `stack-trace` tables found in a serial log (e.g. from
    /// `./x run --serial-log LOG -- 'stacktrace; ...; stack-trace'`) as an
    /// SVG on standard output, instead of the list.
    #[arg(long, value_name = "LOG")]
    svg: Option<std::path::PathBuf>,
    /// Check every row of the `stack-trace` tables in a serial log against
    /// the code: each frame's size must be the depth the code reaches at
    /// that call. Fails on any disagreement.
    #[arg(long, value_name = "LOG")]
    check_trace: Option<std::path::PathBuf>,
}

/// Where each kind of kernel entry starts, the stack it runs on, and the
/// chain of functions that leads from the assembly stub to its handler
/// (the stub's `exception_dispatch` reaches every handler; the chain keeps
/// only this entry's).
const ENTRIES: &[(&str, &str, u64, &[&str])] = &[
    ("thread start", "TASK", THREAD_SIZE, &["tristack_thread_start", "tristack::sched::thread_main"]),
    ("syscall", "TASK", THREAD_SIZE, &["tristack_entry_SYSCALL_64", "tristack::arch::x86_64::syscall::do_syscall_64"]),
    ("IRQ", "IRQ", IRQ_STACK_SIZE, &["tristack_irq_common"]),
    ("softirq", "IRQ", IRQ_STACK_SIZE, &["tristack::softirq::run_rounds"]),
    (
        "#DF",
        "#DF",
        EXCEPTION_STKSZ,
        &[
            "tristack_df_common",
            "tristack::arch::x86_64::traps::exception_dispatch",
            "tristack::arch::x86_64::traps::double_fault",
        ],
    ),
    (
        "NMI",
        "NMI",
        EXCEPTION_STKSZ,
        &[
            "tristack_paranoid_common",
            "tristack::arch::x86_64::traps::exception_dispatch",
            "tristack::arch::x86_64::nmi::handle",
        ],
    ),
    (
        "#DB",
        "#DB",
        EXCEPTION_STKSZ,
        &[
            "tristack_debug_common",
            "tristack::arch::x86_64::traps::exception_dispatch",
            "tristack::arch::x86_64::debug::handle_db",
        ],
    ),
    (
        "#BP",
        "#DB",
        EXCEPTION_STKSZ,
        &[
            "tristack_debug_common",
            "tristack::arch::x86_64::traps::exception_dispatch",
            "tristack::arch::x86_64::debug::handle_bp",
        ],
    ),
    (
        "#MC",
        "#MC",
        EXCEPTION_STKSZ,
        &[
            "tristack_paranoid_common",
            "tristack::arch::x86_64::traps::exception_dispatch",
            "tristack::arch::x86_64::mce::do_machine_check::<tristack::arch::x86_64::mce::Hardware>",
        ],
    ),
];

fn main() -> ExitCode {
    let args = Args::parse();
    let elf = match std::fs::read(&args.kernel_elf) {
        Ok(elf) => elf,
        Err(e) => {
            eprintln!("checkstack: cannot read {}: {e}", args.kernel_elf.display());
            return ExitCode::from(2);
        }
    };
    let kernel = match Kernel::read(&elf) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("checkstack: {}: {e}", args.kernel_elf.display());
            return ExitCode::from(2);
        }
    };
    if let Some(log) = &args.check_trace {
        return check_trace(&kernel, log);
    }
    if let Some(log) = &args.svg {
        let tables = match std::fs::read_to_string(log) {
            Ok(text) => checkstack::svg::parse_tables(&text),
            Err(e) => {
                eprintln!("checkstack: cannot read {}: {e}", log.display());
                return ExitCode::from(2);
            }
        };
        if tables.is_empty() {
            eprintln!("checkstack: no stack-trace tables in {}", log.display());
            return ExitCode::from(2);
        }
        let size = |kind: &str| match kind {
            "TASK" => THREAD_SIZE,
            "IRQ" => IRQ_STACK_SIZE,
            _ => EXCEPTION_STKSZ,
        };
        out!("{}", checkstack::svg::render(&tables, size).trim_end());
        return ExitCode::SUCCESS;
    }
    let mut ok = true;
    for f in kernel.largest(args.threshold) {
        out!("{}", checkstack_line(f, "kernel"));
    }
    cross_check(&kernel);
    if let Some(limit) = args.frame_warn {
        ok &= frame_gate(&kernel, limit, args.allow.as_deref());
    }
    if args.entries {
        entries(&kernel);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cross_check(kernel: &Kernel) {
    let dynamic = kernel.functions.iter().filter(|f| f.frame.dynamic).count();
    let Some(sizes) = &kernel.stack_sizes else {
        out!(
            "checkstack: {} functions ({dynamic} with a dynamic part); no .stack_sizes section to compare with \
             (build with -Z emit-stack-sizes)",
            kernel.functions.len()
        );
        return;
    };
    let compared = kernel.functions.iter().filter(|f| sizes.contains_key(&f.addr)).count();
    let differ = kernel.disagreements();
    out!(
        "checkstack: {} functions ({dynamic} with a dynamic part); the compiler's .stack_sizes has {} entries, \
         {compared} of them at a function start; {} disagree",
        kernel.functions.len(),
        sizes.len(),
        differ.len()
    );
    for (f, ours, theirs) in differ {
        out!("checkstack: disagree: {} at {:#x}: code reserves {ours}, compiler says {theirs}", f.name, f.addr);
    }
}

fn frame_gate(kernel: &Kernel, limit: u64, allow: Option<&std::path::Path>) -> bool {
    let allowed: Vec<String> = match allow.map(std::fs::read_to_string) {
        None => vec![],
        Some(Ok(text)) => {
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
        }
        Some(Err(e)) => {
            eprintln!("checkstack: cannot read the allow list: {e}");
            return false;
        }
    };
    let over: Vec<_> = kernel.largest(limit + 1);
    let mut bad = 0;
    for f in &over {
        if allowed.contains(&f.name) {
            out!("checkstack: frame-warn: {} uses {} bytes (allowed by the allow list)", f.name, f.frame.size);
        } else {
            // The compiler's wording (-Wframe-larger-than).
            out!(
                "checkstack: error: the frame size of {} bytes is larger than {limit} bytes: {}",
                f.frame.size,
                f.name
            );
            bad += 1;
        }
    }
    for name in allowed.iter().filter(|n| !over.iter().any(|f| &&f.name == n)) {
        out!("checkstack: frame-warn: allow-list entry '{name}' is not over {limit} bytes (stale?)");
    }
    out!("checkstack: frame-warn {limit}: {} over the limit, {bad} not allowed", over.len());
    bad == 0
}

fn entries(kernel: &Kernel) {
    let frames = kernel.frames();
    let mut graph = Graph::new(&frames);
    out!("checkstack: worst case per entry point (direct calls; bytes from the stack top)");
    // mcount runs at every function entry; its hook only while the stack
    // tracer is on, and never nested (a per-CPU flag): once per path.
    if let Some(m) = kernel.mcount {
        let hook = graph.worst(m);
        out!(
            "  (the stack tracer, while on, adds up to {} bytes below the deepest function: {})",
            hook.bytes,
            hook.path.iter().map(|&a| kernel.name_of(a)).collect::<Vec<_>>().join(" > ")
        );
    }
    for &(label, stack, size, chain) in ENTRIES {
        // A function of the chain the compiler inlined into its caller is
        // skipped: the caller's worst case then covers it (and possibly
        // more: an over-estimate, said so).
        let fns: Vec<_> = chain.iter().filter_map(|n| kernel.by_name(n)).collect();
        let inlined: Vec<_> = chain.iter().filter(|n| kernel.by_name(n).is_none()).collect();
        if fns.is_empty() {
            out!("  {label:<13} {stack:<5} not found in the ELF: {chain:?}");
            continue;
        }
        // The chain's own frames down to the last function's call site,
        // then the worst case below that function.
        let mut bytes = 0;
        let mut path = Vec::new();
        for pair in fns.windows(2) {
            let depth = pair[0]
                .frame
                .calls
                .iter()
                .filter(|(_, c)| *c == checkstack::frame::Callee::Direct(pair[1].addr))
                .map(|&(d, _)| d)
                .max()
                .unwrap_or(pair[0].frame.peak);
            bytes += 8 + depth;
            path.push(format!("{} ({})", pair[0].name, pair[0].frame.peak));
        }
        let last = fns[fns.len() - 1];
        let w = graph.worst(last.addr);
        bytes += w.bytes;
        for &a in &w.path {
            let f = frames.get(&a).map_or(0, |f| f.peak);
            path.push(format!("{} ({f})", kernel.name_of(a)));
        }
        let left = size as i64 - bytes as i64;
        out!("  {label:<13} {stack:<5} {bytes:>6} of {size:>6} bytes, {left:>6} left");
        out!("      deepest: {}", path.join(" > "));
        if !inlined.is_empty() {
            out!("      inlined into their callers (the figure covers every path from there): {inlined:?}");
        }
        let names = |v: &[u64]| v.iter().map(|&a| kernel.name_of(a)).collect::<Vec<_>>().join(", ");
        if !w.recursion.is_empty() {
            out!("      recursion (not bounded by this figure) at: {}", names(&w.recursion));
        }
        if !w.indirect.is_empty() {
            out!(
                "      indirect calls (not followed) in {} function(s): {}",
                w.indirect.len(),
                names(&w.indirect[..w.indirect.len().min(8)])
            );
        }
        if !w.unknown.is_empty() {
            out!("      calls to addresses with no symbol: {}", w.unknown.len());
        }
    }
}

/// The runtime and the static figures, frame by frame.
fn check_trace(kernel: &Kernel, log: &std::path::Path) -> ExitCode {
    let tables = match std::fs::read_to_string(log) {
        Ok(text) => checkstack::svg::parse_tables(&text),
        Err(e) => {
            eprintln!("checkstack: cannot read {}: {e}", log.display());
            return ExitCode::from(2);
        }
    };
    let (mut agree, mut skipped, mut differ) = (0, 0, 0);
    for t in &tables {
        // The last row's size is all that is left above it (Linux's table
        // has no frame to measure there).
        for (i, (_, size, location)) in t.rows.iter().enumerate().take(t.rows.len().saturating_sub(1)) {
            let expected = kernel.address_of(location).and_then(|a| kernel.expected_trace_size(i, a));
            match expected {
                None => skipped += 1,
                Some((_, want)) if want == *size => agree += 1,
                Some((f, want)) => {
                    differ += 1;
                    out!("checkstack: trace {} row {i}: {location} is {size} bytes at run time, the code says {want} ({})", t.kind, f.name);
                }
            }
        }
    }
    out!(
        "checkstack: trace check: {} tables, {agree} frames agree with the code, {differ} disagree, {skipped} not compared (interrupted RIPs, the outermost row, ambiguous names)",
        tables.len()
    );
    if tables.is_empty() || differ > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
