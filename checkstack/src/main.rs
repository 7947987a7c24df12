//! `./x checkstack [OPTIONS]` (the kernel ELF is found by the runner and
//! passed in `TRISTACK_KERNEL_ELF`).

use std::process::ExitCode;

use clap::Parser;

use checkstack::{checkstack_line, Kernel};
use tristack::layout::{EXCEPTION_STKSZ, IRQ_STACK_SIZE, THREAD_SIZE};

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

mod entries;

#[derive(Parser)]
#[command(
    override_usage = "./x checkstack [OPTIONS]   (./x supplies KERNEL_ELF: the kernel the runner boots)\n       \
                            checkstack [OPTIONS] KERNEL_ELF",
    about = "Stack frames of the tristack kernel: checkstack.pl's list, the compiler's figures, \
                   a frame-size gate and the worst case per entry point"
)]
struct Args {
    /// The kernel ELF. `./x checkstack` supplies the one the runner boots
    /// (`cargo run -- --kernel-elf` prints its path).
    #[arg(env = "TRISTACK_KERNEL_ELF", hide_env_values = true)]
    kernel_elf: std::path::PathBuf,
    /// List functions whose frame is at least this many bytes (checkstack.pl:
    /// 100) [default: 100; no list with --entries or --frame-warn unless given]
    #[arg(long, value_name = "BYTES")]
    threshold: Option<u64>,
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
    /// With --entries: also follow the calls through pointers that the
    /// `stack-trace` tables in this serial log show were taken.
    #[arg(long, value_name = "LOG", requires = "entries")]
    indirect_from: Option<std::path::PathBuf>,
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
    // The list is the default report; --entries and --frame-warn are reports of their own.
    let threshold = match args.threshold {
        None if args.entries || args.frame_warn.is_some() => None,
        t => Some(t.unwrap_or(100)),
    };
    if let Some(threshold) = threshold {
        for f in kernel.largest(threshold) {
            out!("{}", checkstack_line(f, "kernel"));
        }
        cross_check(&kernel);
    }
    if let Some(limit) = args.frame_warn {
        ok &= frame_gate(&kernel, limit, args.allow.as_deref());
    }
    if args.entries {
        let tables = match &args.indirect_from {
            None => vec![],
            Some(log) => match std::fs::read_to_string(log) {
                Ok(text) => checkstack::svg::parse_tables(&text),
                Err(e) => {
                    eprintln!("checkstack: cannot read {}: {e}", log.display());
                    return ExitCode::from(2);
                }
            },
        };
        if args.indirect_from.is_some() && tables.is_empty() {
            eprintln!("checkstack: no stack-trace tables in the --indirect-from log");
            return ExitCode::from(2);
        }
        entries::entries(&kernel, &tables);
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
    let over = entries::depth_bounds(kernel, &tables);
    if tables.is_empty() || differ > 0 || over > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
